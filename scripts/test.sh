#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test against both LibTorch builds: Debian's 1.13 (CPU,
# build/) and the torch wheel's 2.x (a CUDA build, build-torch2/; its CUDA tests run where a GPU is and skip
# elsewhere); an installed-package consumer (examples/minimal); the Python package as the README installs it
# (a fresh virtual environment, `pip install .`); every code block of README.md and docs/; the CPU-only parts
# of scripts/gpu-check.sh; then the library, group, nn and CLI tests under the sanitizers, and the fuzz
# targets (scripts/sanitize.sh). Prints each stage's wall time and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
started=$(date +%s)
times=()
report() {
  local line
  echo "== stage times (s), $jobs cores, load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  for line in "${times[@]}"; do echo "  $line"; done
  echo "  total: $(($(date +%s) - started)) s"
}
trap report EXIT
stage() {  # stage NAME COMMAND...: runs COMMAND, records its wall time under NAME
  local name=$1 t0=$(date +%s); shift
  echo "== $name"
  "$@"
  times+=("$(printf '%-44s %5d' "$name" $(($(date +%s) - t0)))")
}

stage "install-deps" bash scripts/install-deps.sh
# Each test runs once per LibTorch: against 1.13 under the sanitizers (scripts/sanitize.sh, below: the group,
# nn and CLI tests), against 2.x in build-torch2/. Compiled and run a third time here, the nn tests alone took a
# tenth of CI's 90 minutes. This build is what the installed-package consumer and the docs' blocks use (the
# library and symm, which the install holds), and the group tests, run here too as they take seconds.
stage "LibTorch 1.13 (Debian): build" env SYMM_TORCH=debian bash scripts/build.sh symm symm_app symm_group_tests
stage "LibTorch 1.13 (Debian): group tests" ctest --test-dir build --output-on-failure -j "$jobs" -L group

consumer() {
  rm -rf build/install build/minimal
  cmake --install build --prefix build/install > /dev/null
  cmake -S examples/minimal -B build/minimal -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" > /dev/null
  cmake --build build/minimal
  ./build/minimal/minimal
}
stage "installed package consumer (examples/minimal)" consumer

stage "LibTorch 2.x (torch wheel): build" env SYMM_TORCH=wheel bash scripts/build.sh symm symm_app symm_nn_tests \
  symm_checkpoint_peer
# The group engine is torch-free and compiled alike in both folders: its tests are built and run in build/ (and
# under the sanitizers), not a second time here. Of the CLI tests, those whose code meets LibTorch's version: training,
# its checkpoints and resumption, and DDP over gloo; info, check, bench and policy run against 1.13 (sanitizers).
stage "LibTorch 2.x (torch wheel): nn and CLI tests" ctest --test-dir build-torch2 --output-on-failure -j "$jobs" \
  -LE group -E '^cli_(info|check|bench|policy)$'

# SYMM_WHEEL=1: `pip wheel .` too, installed into a second fresh environment (its compiles are ccache hits).
stage "Python: fresh venv, pip install ., pip wheel ., pytest" env SYMM_WHEEL=1 bash scripts/test-python.sh build-torch2
stage "README and docs/ code blocks (C++, Python)" bash scripts/check-docs.sh build/install build/docs build-python/venv
stage "gpu-check.sh: CPU-only parts" bash scripts/gpu-check.sh --self-test
stage "sanitizers and fuzzing" bash scripts/sanitize.sh build-sanitize
