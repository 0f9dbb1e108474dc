#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test against both LibTorch builds: Debian's 1.13 (CPU,
# build/) and the torch wheel's 2.x (a CUDA build, build-torch2/; its CUDA tests run where a GPU is and skip
# elsewhere); an installed-package consumer (examples/minimal) and the README's C++ blocks; then the whole
# suite again under the sanitizers, and the fuzz targets (scripts/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== LibTorch 1.13 (Debian, CPU): build, unit and CLI tests"
SYMM_TORCH=debian bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== installed package consumer (examples/minimal)"
rm -rf build/install build/minimal
cmake --install build --prefix build/install > /dev/null
cmake -S examples/minimal -B build/minimal -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" > /dev/null
cmake --build build/minimal
./build/minimal/minimal

echo "== README C++ blocks, built and run against the installed package"
bash scripts/check-docs.sh build/install build/docs

echo "== LibTorch 2.x (torch wheel, CUDA build): build, unit and CLI tests"
SYMM_TORCH=wheel bash scripts/build.sh
ctest --test-dir build-torch2 --output-on-failure -j "$jobs"

# ---- Python package: pip install . (reusing build-torch2's objects), pytest tests/python ----
echo "== Python package (python/, tests/python) against the LibTorch 2.x build"
bash scripts/test-python.sh build-torch2
# ---- end of the Python stage ----

# ---- reliability: the whole suite under ASan + UBSan (clang), then each fuzz target for 60 s ----
echo "== sanitizers (ASan + UBSan over the library, the group, nn and CLI tests) and fuzzing"
bash scripts/sanitize.sh build-sanitize
# ---- end of the reliability stage ----
