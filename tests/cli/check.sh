#!/usr/bin/env bash
# symm check: passes on C5, D8, I, Q8 and a JSON-defined group; its last line has the specified form;
# bad arguments exit 2.
set -u
symm=$1
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The rotations of a square in 3D with a vertical flip: a group given by matrix generators.
echo '{"name": "square3d", "generators": [[[0,-1,0],[1,0,0],[0,0,1]], [[1,0,0],[0,-1,0],[0,0,-1]]]}' > "$tmp/square.json"

run() {
  out=$("$symm" check "$@" 2>&1); rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  [[ "$last" =~ ^max_relative_equivariance_error=[0-9.eE+-]+$ ]] || fail "symm check $*: last line is '$last'"
  [ "$rc" -eq 0 ] || fail "symm check $* exited $rc: $out"
}
run C5 --copies 2 --heads 2 --layers 2
run D8 --copies 2 --heads 1 --layers 1 --norm layernorm --post-norm
# Under the sanitizers (SYMM_TEST_SMALL=1) two copies of I's regular representation in one rotary head: the same
# code at half the width.
i_width=(--copies 4 --heads 2)
if [ -n "${SYMM_TEST_SMALL:-}" ]; then i_width=(--copies 2 --heads 1); fi
run I "${i_width[@]}" --layers 1 --attention rotary
run Q8 --copies 4 --heads 2 --layers 2 --attention alibi --dtype float64
run "$tmp/square.json" --copies 2 --heads 2 --layers 1
run C2xD3 --copies 2 --heads 1 --layers 1
run D8 --copies 2 --heads 2 --layers 1 --dtype bfloat16

bad() { "$symm" check "$@" >/dev/null 2>&1; rc=$?; [ "$rc" -eq 2 ] || fail "symm check $* exited $rc, expected 2"; }
bad C5 --copies 3 --heads 2
bad C0
bad C5 --norm batchnorm
bad C5 --attention linear
bad C5 --dtype float16
bad C5 --pre-norm --post-norm
bad C5 --copies 0
bad C5 --bogus
# --device cuda: runs where a GPU is; elsewhere exit 2 and one line saying that no CUDA device is available.
msg=$("$symm" check C5 --device cuda 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then
  [ "$rc" -eq 2 ] || fail "symm check --device cuda exited $rc, expected 0 (GPU) or 2 (none)"
  [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] && [[ "$msg" == *"no CUDA device"* ]] ||
    fail "symm check --device cuda without a GPU said: $msg"
fi
echo "ok"
