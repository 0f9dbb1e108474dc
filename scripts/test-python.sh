#!/usr/bin/env bash
# The Python package: `pip install .` (scikit-build-core) into a scratch folder, reusing the LibTorch 2.x
# build's objects, then the pytest tests of tests/python against it, with the C++ checkpoint peer.
#   $1  the CMake build folder of the LibTorch 2.x build (default build-torch2); its libraries are reused,
#       so only the bindings compile here
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SYMM_VENV:-/opt/symm-venv}
dir=${1:-build-torch2}
site="$dir/python-site"
rm -rf "$site"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --target "$site" \
  -Cbuild-dir="$dir" -Ccmake.define.SYMM_BUILD_TESTS=ON -Ccmake.define.SYMM_BUILD_BENCH=ON .
cmake --build "$dir" --parallel "$(nproc)" --target symm_checkpoint_peer
rc=0
PYTHONPATH="$PWD/$site" SYMM_CHECKPOINT_PEER="$PWD/$dir/python/symm_checkpoint_peer" \
  "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests in tests/python" >&2
  exit 1
fi
exit "$rc"
