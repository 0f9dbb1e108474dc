#!/usr/bin/env bash
# symm train, data-parallel on loopback: --nproc 2 ends with the test errors of --nproc 1 (same seed and global
# batch, up to the order of sums); a job whose rank 1 is killed stops within --timeout with exit 1 naming
# rank 1, leaves a whole checkpoint, and a one-process --resume of it ends like the uninterrupted job;
# bad job setups (a port in use, no rank 0 to reach, inconsistent ranks, --nproc over the batch) exit 2
# with one line before training.
set -u
symm=$1
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
listener=""
trap '[ -n "$listener" ] && kill "$listener" 2>/dev/null; rm -rf "$tmp"' EXIT
unset RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT

cfg=(--nodes 3 --width 24 --heads 2 --layers 1 --seq-len 8 --batch-size 8 --train-size 16 --steps 160 --seed 3)

last_line() { tail -n 1 "$1"; }
# Both lines' three errors agree within a relative 1e-3, and the second says world_size=$3.
same_result() {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
pat = r"^equivariant_test_mse=(\S+) baseline_test_mse=(\S+) equivariance_error=(\S+) world_size=(\d+)$"
a, b = re.match(pat, sys.argv[1]), re.match(pat, sys.argv[2])
assert a and b, f"last lines have the wrong format: {sys.argv[1]!r} / {sys.argv[2]!r}"
assert b.group(4) == sys.argv[3], f"world_size {b.group(4)}, expected {sys.argv[3]}"
for name, i in (("equivariant", 1), ("baseline", 2)):
    x, y = float(a.group(i)), float(b.group(i))
    assert abs(x - y) <= 1e-3 * abs(x), f"{name} test MSE {x} vs {y}"
assert float(b.group(3)) < 1e-5, f"equivariance error {b.group(3)}"
PY
}

"$symm" train "${cfg[@]}" --out "$tmp/one" > "$tmp/one.log" 2>&1 || { cat "$tmp/one.log"; fail "one process exited $?"; }
"$symm" train "${cfg[@]}" --nproc 2 --out "$tmp/two" > "$tmp/two.log" 2>&1 || { cat "$tmp/two.log"; fail "two processes exited $?"; }
echo "1 process:   $(last_line "$tmp/one.log")"
echo "2 processes: $(last_line "$tmp/two.log")"
same_result "$(last_line "$tmp/one.log")" "$(last_line "$tmp/one.log")" 1 || fail "one-process last line"
same_result "$(last_line "$tmp/one.log")" "$(last_line "$tmp/two.log")" 2 || fail "--nproc 2 differs from --nproc 1"
# Rank 0 alone speaks and writes; the coefficients all-reduced are a fraction of the dense weights.
[ "$(grep -c '^equivariant_test_mse=' "$tmp/two.log")" -eq 1 ] || fail "more than one rank printed the result"
python3 - "$tmp/two/summary.json" "$tmp/one/summary.json" <<'PY' || fail "summary.json communication sizes"
import json, sys
two, one = (json.load(open(p)) for p in sys.argv[1:])
assert two["world_size"] == 2 and one["world_size"] == 1
c, d = two["comm_bytes_per_step"], two["dense_comm_bytes_per_step"]
assert 0 < c < d / 2, (c, d)  # D3: |G| = 6 times fewer numbers in the linear maps
assert one["comm_bytes_per_step"] == 0
PY
grep -q "^comm_bytes_per_step=[1-9][0-9]* dense_comm_bytes_per_step=[1-9]" "$tmp/two.log" || fail "closing line with comm bytes"
ls "$tmp/two" | grep -q '\.tmp$' && fail "temporary files left in --out"

# Kill rank 1 once the first checkpoint exists: rank 0 names it and stops by itself within --timeout.
"$symm" train "${cfg[@]}" --nproc 2 --timeout 10 --out "$tmp/k" > "$tmp/k.log" 2>&1 &
job=$!
for _ in $(seq 1 1200); do [ -s "$tmp/k/checkpoint.pt" ] && break; sleep 0.05; done
[ -s "$tmp/k/checkpoint.pt" ] || { cat "$tmp/k.log"; fail "no checkpoint appeared"; }
victim=""
for c in $(pgrep -P "$job"); do tr '\0' '\n' < "/proc/$c/environ" 2>/dev/null | grep -qx RANK=1 && victim=$c; done
[ -n "$victim" ] || { cat "$tmp/k.log"; fail "rank 1 not found (job over too soon?)"; }
kill -9 "$victim"
t0=$(date +%s.%N)
wait "$job"; rc=$?
elapsed=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$(date +%s.%N)")
cat "$tmp/k.log" | grep -E "rank|symm:" | tail -n 3
[ "$rc" -eq 1 ] || fail "killed job exited $rc, expected 1"
grep -q "rank 1 stopped responding" "$tmp/k.log" || fail "rank 0 did not name rank 1"
grep -q "did not stop within" "$tmp/k.log" && fail "rank 0 had to be killed"
python3 -c "import sys; assert float(sys.argv[1]) <= 12, sys.argv[1]" "$elapsed" || fail "stopping took $elapsed s"
ls "$tmp/k" | grep -q '\.tmp$' && fail "partial checkpoint left"
"$symm" train "${cfg[@]}" --resume "$tmp/k/checkpoint.pt" --out "$tmp/k1" > "$tmp/k1.log" 2>&1 ||
  { cat "$tmp/k1.log"; fail "one-process resume of the two-process checkpoint exited $?"; }
echo "resumed:     $(last_line "$tmp/k1.log")"
same_result "$(last_line "$tmp/one.log")" "$(last_line "$tmp/k1.log")" 1 || fail "resumed job differs"

# Bad setups: exit 2, one line, before training.
expect2() {
  local what=$1; shift
  # LibTorch's own log lines may precede ours: glog's "W1127 ..." in Debian's build, c10's "[E1127 ...]" with
  # the exception's backtrace in the wheel's.
  env "$@" > /dev/null 2> "$tmp/err"; rc=$?
  err=$(grep -Ev '^(\[?[IWE][0-9]{4,8} |WARNING: Logging before|Exception raised from |frame #[0-9]+: )' "$tmp/err")
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2 ($err)"
  [ "$(printf '%s\n' "$err" | grep -c .)" -eq 1 ] || fail "$what: expected one line, got: $err"
  echo "  $what: $err"
}
run=("$symm" train "${cfg[@]}" --out "$tmp/bad")
expect2 "--nproc over the batch" "${run[@]}" --nproc 9
expect2 "RANK without a place" RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 "${run[@]}"
expect2 "--nproc against WORLD_SIZE" RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 "${run[@]}" --nproc 3
expect2 "WORLD_SIZE without RANK" WORLD_SIZE=2 "${run[@]}"
python3 -c "
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(120)" > "$tmp/port" &
listener=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
busy=$(cat "$tmp/port")
expect2 "--nproc with MASTER_PORT in use" MASTER_PORT="$busy" "${run[@]}" --nproc 2
expect2 "rank 0 on a port in use" RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$busy" "${run[@]}" --timeout 2
free=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
expect2 "no rank 0 to reach" RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$free" "${run[@]}" --timeout 2
# Two ranks that disagree on WORLD_SIZE.
RANK=1 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT="$free" "${run[@]}" --timeout 3 > /dev/null 2>&1 &
other=$!
expect2 "inconsistent WORLD_SIZE" RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$free" "${run[@]}" --timeout 3
wait "$other"; [ $? -eq 2 ] || fail "the rank with WORLD_SIZE=3 did not exit 2"
[ -e "$tmp/bad/checkpoint.pt" ] && fail "a rejected job trained"
echo "ok"
