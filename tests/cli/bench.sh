#!/usr/bin/env bash
# symm bench --quick: the output format (no timing thresholds), and exit code 2 on bad arguments.
set -u
symm=$1
fail() { echo "FAIL: $*"; exit 1; }

out=$("$symm" bench --quick) || fail "symm bench --quick exited $?"
num='[0-9]+(\.[0-9]+)?'
lines=$(printf '%s\n' "$out" | grep -v '^#')
[ "$(printf '%s\n' "$lines" | grep -cE "ratio_eval=$num ratio_train=$num")" -eq 3 ] \
  || fail "expected 3 config lines with ratio_eval= ratio_train=, got: $out"
for g in C2 C8 D8; do
  printf '%s\n' "$lines" | grep -E "^$g " | grep -qE "params_ours=[0-9]+ params_torch=[0-9]+" \
    || fail "no line for $g with parameter counts: $out"
done
last=$(printf '%s\n' "$out" | tail -n 1)
printf '%s\n' "$last" | grep -qxE "worst_ratio_eval=$num worst_ratio_train=$num" || fail "last line: '$last'"

for args in "--device tpu" "--bogus" "--threads -1" "--threads x"; do
  # shellcheck disable=SC2086
  "$symm" bench $args >/dev/null 2>&1; rc=$?
  [ "$rc" -eq 2 ] || fail "symm bench $args exited $rc, expected 2"
done
# Without CUDA, --device cuda must refuse with exit code 2 and say why.
if ! nvidia-smi >/dev/null 2>&1; then
  err=$("$symm" bench --device cuda --quick 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 2 ] || fail "symm bench --device cuda without CUDA exited $rc, expected 2"
  printf '%s\n' "$err" | grep -qi cuda || fail "--device cuda without CUDA: message does not mention CUDA: $err"
fi
echo "ok"
