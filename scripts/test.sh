#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the unit and CLI tests, the group engine under
# AddressSanitizer and UndefinedBehaviorSanitizer, and an installed-package consumer (examples/minimal).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
jobs=$(nproc)

echo "== group engine under ASan + UBSan"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSYMM_GROUP_ONLY=ON -DSYMM_SANITIZE=ON > /dev/null
cmake --build build-sanitize --parallel "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --test-dir build-sanitize --output-on-failure -j "$jobs"

echo "== installed package consumer (examples/minimal)"
rm -rf build/install build/minimal
cmake --install build --prefix build/install > /dev/null
cmake -S examples/minimal -B build/minimal -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" > /dev/null
cmake --build build/minimal
./build/minimal/minimal

echo "== unit and CLI tests"
ctest --test-dir build --output-on-failure -j "$jobs"
