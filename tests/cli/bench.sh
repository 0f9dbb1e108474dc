#!/usr/bin/env bash
# symm bench --quick: the output format (no timing thresholds), and exit code 2 on bad arguments.
set -u
symm=$1
fail() { echo "FAIL: $*"; exit 1; }

# Started without the wait settings, the program restarts itself with idle workers that sleep.
out=$(env -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT "$symm" bench --quick --threads 1) \
  || fail "symm bench --quick --threads 1 exited $?"
num='[0-9]+(\.[0-9]+)?'
printf '%s\n' "$out" | head -n 1 | grep -qE 'allocator="[^"]+"' || fail "header names no allocator setting: $out"
# --threads sizes OpenBLAS's own pool too when the program runs OpenBLAS (Debian's LibTorch does).
openblas=false
if ldd "$symm" | grep -q openblas; then openblas=true; fi
threads='threads="torch=1 omp_wait=PASSIVE"'
if $openblas; then threads='threads="torch=1 openblas=1 omp_wait=PASSIVE openblas_timeout=20"'; fi
printf '%s\n' "$out" | head -n 1 | grep -qF "$threads" || fail "header does not say $threads: $(printf '%s\n' "$out" | head -n 1)"
chosen=$(OMP_WAIT_POLICY=ACTIVE OPENBLAS_THREAD_TIMEOUT=9 "$symm" bench --quick --configs small --threads 1 | head -n 1)
printf '%s\n' "$chosen" | grep -qE 'omp_wait=ACTIVE( |")' || fail "the user's OMP_WAIT_POLICY was not kept: $chosen"
if $openblas; then
  printf '%s\n' "$chosen" | grep -qF 'openblas_timeout=9"' || fail "the user's OPENBLAS_THREAD_TIMEOUT was not kept: $chosen"
fi
lines=$(printf '%s\n' "$out" | grep -v '^#')
[ "$(printf '%s\n' "$lines" | grep -cE " ratio_eval=$num ratio_train=$num ratio_eval_best=$num")" -eq 6 ] \
  || fail "expected 6 config lines with ratio_eval= ratio_train= ratio_eval_best=, got: $out"
for g in "C2 m=32" "C8 m=16" "D8 m=8" "D8 m=32" "O m=16" "I m=8"; do
  printf '%s\n' "$lines" | grep -E "^$g " | grep -E "flops_ratio=$num" | grep -qE "params_ours=[0-9]+ params_torch=[0-9]+" \
    || fail "no line for $g with flops_ratio and parameter counts: $out"
done
printf '%s\n' "$lines" | grep -E "^[A-Za-z0-9]+ m=[0-9]+ layers=4 " | grep -qE "stack_ratio_eval=$num stack_ratio_train=$num" \
  || fail "no 4-layer stack line: $out"
last=$(printf '%s\n' "$out" | tail -n 1)
printf '%s\n' "$last" | grep -qxE "worst_ratio_eval=$num worst_ratio_train=$num" || fail "last line: '$last'"

for args in "--device tpu" "--bogus" "--threads -1" "--threads x" "--execution sparse" "--configs huge"; do
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
