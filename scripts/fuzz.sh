#!/usr/bin/env bash
# Runs libFuzzer targets built by scripts/sanitize.sh (SYMM_FUZZ=ON):
#   scripts/fuzz.sh TARGET|all SECONDS [BUILD_DIR]     targets: group_spec group_json rep_spec checkpoint
# Each starts from its seed corpus fuzz/corpus/TARGET (left untouched; new inputs go to BUILD_DIR/fuzz-corpus).
# Fails on a crash, a sanitizer report, a leak, an input slower than 1 s or one needing more than 2 GB; the
# input is kept as BUILD_DIR/fuzz-findings/TARGET-*. Turn each finding into a regression test and keep the
# input as fuzz/findings/TARGET-<what>: every run replays those first.
# FUZZ_TIMEOUT (seconds, default 1) is wall-clock: raise it only on a machine shared with other work.
# FUZZ_RUNS=N stops a target after N executions, if that comes before SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS [BUILD_DIR]}
seconds=${2:?usage: scripts/fuzz.sh TARGET|all SECONDS [BUILD_DIR]}
build=${3:-build-sanitize}
targets=(group_spec group_json rep_spec checkpoint)
[ "$target" = all ] || targets=("$target")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:suppressions=$PWD/scripts/sanitizers/ubsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/sanitizers/lsan.supp}
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin is missing; build with scripts/sanitize.sh"; exit 1; }
  scratch="$build/fuzz-corpus/$t" findings="$build/fuzz-findings"
  mkdir -p "$scratch" "$findings"
  dict=(); [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  log="$build/fuzz-$t.log"
  # Past findings (fuzz/findings/TARGET-*) first: each must now run clean.
  for f in fuzz/findings/"$t"-*; do
    [ -e "$f" ] || continue
    "$bin" -timeout="${FUZZ_TIMEOUT:-1}" -rss_limit_mb=2048 "$f" > "$log" 2>&1 || {
      tail -n 30 "$log"; echo "fuzz $t: the regression input $f fails again"; exit 1; }
  done
  if ! "$bin" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-1}" -rss_limit_mb=2048 -print_final_stats=1 -runs="${FUZZ_RUNS:--1}" "${dict[@]}" \
       -artifact_prefix="$findings/$t-" "$scratch" "fuzz/corpus/$t" > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $t: FINDING (input in $findings/, log $log)"
    exit 1
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  slowest=$(awk '/stat::slowest_unit_time_sec/ {print $2}' "$log")
  took=$(awk '/^Done [0-9]+ runs in/ {print $5}' "$log")
  echo "fuzz $t: $runs executions in ${took:-$seconds} s (slowest input ${slowest} s), no crash, leak or slow input"
done
