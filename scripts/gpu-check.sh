#!/usr/bin/env bash
# The whole GPU check in one command, for a machine with an NVIDIA GPU, CUDA 12-13, g++, cmake, ninja and its
# own torch 2.x in Python (nothing is installed): configures against that torch, builds the library, the nn tests,
# `symm` and the Python extension on all cores, runs the CUDA tests (which must run, not skip), `symm check`
# on D8 and I, `symm bench`, `symm train` and `symm policy` on the GPU with short settings, and the Python
# tests on CUDA. Every figure goes, with the card, driver, torch version and date, into one Markdown file
# (for bench/RESULTS.md). About 10 minutes in all; each step has its own time limit.
#   scripts/gpu-check.sh [--out FILE] [--build DIR] [--python PY]
#     --out FILE    the results file (default: $OUT/gpu-check.md where $OUT is set, else BUILD/gpu-check.md)
#     --build DIR   the CMake build folder (default build-gpu)
#     --python PY   the Python whose torch to build against and test with (default python3)
#   scripts/gpu-check.sh --configure-only ...   configure and stop (no GPU needed)
#   scripts/gpu-check.sh --self-test            the CPU-only parts, as CI runs them
# Exit: 0 all passed; 1 a step failed (the file says which); 2 bad arguments, or no GPU (one line, at once).
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/gpu-check.sh [--out FILE] [--build DIR] [--python PY] [--configure-only | --self-test]"
out="" build=build-gpu python=python3 mode=full
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--build|--python)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "gpu-check: $1 needs a value; $usage" >&2; exit 2; }
      case "$1" in --out) out=$2 ;; --build) build=$2 ;; --python) python=$2 ;; esac
      shift 2 ;;
    --configure-only) mode=configure; shift ;;
    --self-test) mode=self-test; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1'; $usage" >&2; exit 2 ;;
  esac
done

configure() {  # configure: CMake against the torch of $python, the Python extension included
  local prefix
  prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null) ||
    { echo "gpu-check: $python cannot import torch" >&2; return 1; }
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DSYMM_PYTHON=ON \
    -DPython_EXECUTABLE="$(command -v "$python")" -DSYMM_BUILD_BENCH=OFF > "$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; return 1; }
}

if [ "$mode" = self-test ]; then
  # What CI can check without a GPU: the argument checks, the at-once exit 2 with one line where no GPU is,
  # and the configure against the project environment's torch.
  self=scripts/gpu-check.sh fail=0
  expect() {  # expect RC LINES DESCRIPTION -- ARGS...: the script exits RC printing LINES lines
    local rc=$1 lines=$2 what=$3; shift 4
    local got n start=$(date +%s)
    got=$(bash "$self" "$@" 2>&1); local code=$?
    n=$(printf '%s' "$got" | grep -c '')
    if [ "$code" != "$rc" ] || [ "$n" != "$lines" ] || [ $(($(date +%s) - start)) -gt 5 ]; then
      echo "gpu-check self-test: $what: exit $code, $n line(s) (want $rc, $lines, at once): $got"; fail=1
    else
      echo "gpu-check self-test: $what: exit $code: $got"
    fi
  }
  expect 2 1 "an unknown argument" -- --frobnicate
  expect 2 1 "--out without a value" -- --out
  expect 2 1 "--python without a value" -- --python ""
  if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
    expect 2 1 "no GPU" -- --out /dev/null
  fi
  python=${SYMM_VENV:-/opt/symm-venv}/bin/python build=build-gpu-selftest
  if configure; then
    grep -q "symm: LibTorch 2" "$build.configure.log" || { echo "gpu-check self-test: configure found no LibTorch 2.x"; fail=1; }
    echo "gpu-check self-test: configure against $python's torch: ok"
  else
    fail=1
  fi
  rm -rf "$build" "$build.configure.log"
  exit $fail
fi

if [ "$mode" = full ]; then
  if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi finds none); nothing to check" >&2
    exit 2
  fi
fi
started=$(date +%s)
build=$(realpath -m "$build")
configure || exit 1
rm -f "$build.configure.log"
[ "$mode" = configure ] && { echo "gpu-check: configured $build"; exit 0; }

out=${out:-${OUT:+$OUT/gpu-check.md}}
out=${out:-$build/gpu-check.md}
mkdir -p "$(dirname "$out")" "$build/logs"
logs=$build/logs failed=0
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
torch_info=$("$python" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")')
{
  echo "## GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  echo
  echo "- card, driver, memory: $card"
  echo "- $torch_info; $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc'); $(g++ --version | head -n 1)"
  echo "- host: $(nproc) cores; command: \`scripts/gpu-check.sh\`"
  echo
} > "$out"

step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output to a log; records the result
  local name=$1 limit=$2; shift 2
  local log="$logs/${name// /_}.log" t0=$(date +%s) rc
  if [ $((t0 - started + limit)) -gt 600 ]; then  # the whole check stays within 10 minutes
    failed=1; echo "- $name: NOT RUN (its $limit s would pass the 10 minutes)" >> "$out"
    echo "gpu-check: $name: not run, out of time"; return 0
  fi
  # Through bash -c, so that a step may be one of the functions below (exported with what they read).
  timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" > "$log" 2>&1; rc=$?
  local took=$(($(date +%s) - t0))
  if [ "$rc" = 0 ]; then
    echo "- $name: ok (${took} s)" >> "$out"
  else
    failed=1
    [ "$rc" = 124 ] && rc="timeout after $limit s"
    echo "- $name: FAILED ($rc, ${took} s); last lines:" >> "$out"
    tail -n 15 "$log" | sed 's/^/      /' >> "$out"
  fi
  echo "gpu-check: $name: ${rc/#0/ok} (${took} s)"
  return 0
}
figures() {  # figures NAME [FILTER]: the step's output lines (those matching FILTER) as a code block
  local log="$logs/${1// /_}.log"
  [ -s "$log" ] || return 0
  { echo; echo "\`\`\`"; if [ -n "${2:-}" ]; then grep -E "$2" "$log"; else cat "$log"; fi; echo "\`\`\`"; echo; } >> "$out"
}

symm=$build/apps/symm/symm
export build logs python
step "build" 240 cmake --build "$build" --parallel "$(nproc)" \
  --target symm_app symm_nn_tests symm_python symm_checkpoint_peer

# The CUDA tests: each runs on the GPU; a skip fails the check.
cuda_tests() {
  "$build/tests/nn/symm_nn_tests" --gtest_filter='*Cuda*:*/cuda' --gtest_output="json:$logs/cuda_tests.json" || return 1
  "$python" - "$logs/cuda_tests.json" <<'EOF'
import json, sys
suites = json.load(open(sys.argv[1]))["testsuites"]
tests = [t for s in suites for t in s["testsuite"]]
skipped = [t["name"] for t in tests if t.get("result") == "SKIPPED"]
print(f"{len(tests)} CUDA tests, {len(skipped)} skipped")
sys.exit(1 if not tests or skipped else 0)
EOF
}
export -f cuda_tests
step "CUDA tests" 90 cuda_tests
figures "CUDA tests" 'CUDA tests|PASSED|FAILED'
for g in D8 I; do
  step "symm check $g" 40 "$symm" check "$g" --device cuda
  figures "symm check $g"
done
step "symm bench" 100 "$symm" bench --device cuda
figures "symm bench"
step "symm train" 60 "$symm" train --device cuda --nodes 5 --train-size 16 --steps 300 --seed 1 --out "$build/train"
figures "symm train" '^equivariant_test_mse'
step "symm policy" 60 "$symm" policy --device cuda --demos 8 --steps 100 --eval 16 --seed 1 --out "$build/policy"
figures "symm policy" '^equivariant_success'

# The Python tests on CUDA, against the extension just built (the symm package of python/ with symm._C beside
# it): no pip, since nothing may be installed here.
python_tests() {
  local pkg=$build/python-pkg
  rm -rf "$pkg" && mkdir -p "$pkg" && cp -r python/symm "$pkg/" && cp "$build"/python/_C*.so "$pkg/symm/" || return 1
  "$python" -c 'import pytest' 2>/dev/null || { echo "pytest is not importable by $python: the Python tests did not run"; return 1; }
  "$python" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"' || return 1
  (cd tests/python && PYTHONPATH="$pkg" SYMM_CHECKPOINT_PEER="$build/symm_checkpoint_peer" \
     "$python" -m pytest . -q -p no:cacheprovider)
}
export -f python_tests
step "Python tests (CUDA)" 120 python_tests
figures "Python tests (CUDA)" 'passed|failed|error|not importable'

echo >> "$out"
echo "Total $(($(date +%s) - started)) s; $([ $failed = 0 ] && echo 'every step passed' || echo 'SOME STEPS FAILED')." >> "$out"
echo "gpu-check: results in $out"
exit $failed
