#!/usr/bin/env bash
# AddressSanitizer and UndefinedBehaviorSanitizer (clang-14; LibTorch itself is not instrumented) over the
# whole test suite, then each libFuzzer target for FUZZ_SECONDS (default 30).
#   scripts/sanitize.sh [BUILD_DIR]     (default build-sanitize)
#   SYMM_SANITIZE_SCOPE=all (default, what CI runs): the library, the group, nn and CLI tests, the symm
#                          program, and all four fuzz targets (group_spec, group_json, rep_spec, checkpoint)
#   SYMM_SANITIZE_SCOPE=group  the torch-free group engine, its tests and the three parser targets
# Only what the tests and fuzz targets need is built (no benchmarks, no install). Suppressions, each with its
# reason, live in scripts/sanitizers/.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-sanitize}
scope=${SYMM_SANITIZE_SCOPE:-all}
case "$scope" in
  group) group_only=ON targets=(group_spec group_json rep_spec) ;;
  all) group_only=OFF targets=(group_spec group_json rep_spec checkpoint) ;;
  *) echo "SYMM_SANITIZE_SCOPE must be group or all, got '$scope'" >&2; exit 2 ;;
esac
jobs=$(nproc)
sup="$PWD/scripts/sanitizers"
# Leaks are checked at exit; a shallow malloc stack and a smaller quarantine keep LibTorch's many small
# allocations cheap (the reports stay readable: the frames that matter are ours, near the top).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:malloc_context_size=8:quarantine_size_mb=64
export LSAN_OPTIONS="suppressions=$sup/lsan.supp"
export UBSAN_OPTIONS="print_stacktrace=1:suppressions=$sup/ubsan.supp"

start=$(date +%s)
# -O1, as the sanitizers' documentation advises: reports keep their frames, and the compile is shorter than -O3's.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-gline-tables-only" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DSYMM_GROUP_ONLY=$group_only -DSYMM_SANITIZE=ON -DSYMM_FUZZ=ON \
  -DSYMM_BUILD_BENCH=OFF > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" --parallel "$jobs"
built=$(date +%s)
echo "sanitize ($scope): built in $((built - start)) s"

export SYMM_TEST_SMALL=1  # the CLI tests that read it run their jobs at a size for the sanitizers, asserting the same
# SYMM_SANITIZE_SKIP: tests left out, as a GoogleTest filter (read by every shard); none by default.
skip=${SYMM_SANITIZE_SKIP-}
# (An empty GTEST_FILTER would match no test at all: it is set only with a skip list.)
env ${skip:+GTEST_FILTER="-$skip"} ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900
tested=$(date +%s)
echo "sanitize ($scope): tests passed in $((tested - built)) s"

# Two fuzz targets at a time, one per core; each replays its past findings (fuzz/findings) first.
pids=()
for target in "${targets[@]}"; do
  bash scripts/fuzz.sh "$target" "${FUZZ_SECONDS:-30}" "$build" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
echo "sanitize ($scope): fuzzing took $(($(date +%s) - tested)) s; stage took $(($(date +%s) - start)) s"
