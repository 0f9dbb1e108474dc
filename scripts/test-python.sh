#!/usr/bin/env bash
# The Python package as a user installs it: a fresh virtual environment, the README's `pip install .` (pip's
# build isolation on, a fresh configure), an import from outside the checkout, `ldd` of the extension (it must
# link the LibTorch of the torch package alone, never a system one), then the tests of tests/python against
# that install, with the C++ checkpoint peer of the LibTorch 2.x build.
#   $1  the CMake build folder of the LibTorch 2.x build (default build-torch2), for symm_checkpoint_peer
#   SYMM_WHEEL=1  also `pip wheel .`, and install and import that wheel in a second fresh environment
# The fresh environments get torch (and the test packages) by a .pth file naming the project environment's
# site-packages ($SYMM_VENV, scripts/install-deps.sh): a copy of the 5 GB CUDA wheel per run would take
# minutes, and the environment sees the very torch build a user's would. The build folder is build-pip/ under
# the checkout, made anew for each build: only ccache's objects are reused (their paths relative to the checkout
# are build-torch2's, so its objects and precompiled header hit). Environments and wheels go to build-python/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SYMM_VENV:-/opt/symm-venv}
dir=${1:-build-torch2}
work="$PWD/build-python" build="$PWD/build-pip"
peer="$PWD/$dir/symm_checkpoint_peer"
rm -rf "$work" "$build"
mkdir -p "$work"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

fresh_venv() {  # fresh_venv DIR: a new environment that sees the project environment's packages after its own
  "$venv/bin/python" -m venv "$1"
  echo "$site" > "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/symm-venv.pth"
}

check_import() {  # check_import VENV: import symm from outside the checkout; ldd names only the torch package's LibTorch
  local py="$1/bin/python" ext torch_lib deps bad
  ext=$(cd / && "$py" -c 'import symm._C as c; print(c.__file__)')
  torch_lib=$(cd / && "$py" -c 'import torch, os; print(os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "lib")))')
  case "$ext" in "$1"/*) ;; *) echo "symm imported from $ext, not from $1" >&2; exit 1 ;; esac
  # As at import time, where `import torch` has loaded its libraries first: with torch's lib/ searched first,
  # every LibTorch library the module needs must be found there (a system LibTorch's sonames, such as Debian's
  # libtorch_cpu.so.1.13, are not).
  deps=$(LD_LIBRARY_PATH="$torch_lib" ldd "$ext")
  bad=$(awk '/lib(torch|c10|caffe2)[^ ]*\.so/ {print $3}' <<< "$deps" | while read -r lib; do
          case "$(realpath "$lib")" in "$torch_lib"/*) ;; *) echo "$lib" ;; esac; done)
  if [ -n "$bad" ] || grep -q 'not found' <<< "$deps"; then
    echo "$deps" >&2; echo "$ext links a LibTorch outside $torch_lib (or misses a library): $bad" >&2; exit 1
  fi
  echo "ldd: every LibTorch library of $(basename "$ext") is in $torch_lib"
  (cd / && "$py" -c 'import symm, torch; print("import symm: ok from", symm.__file__, "with torch", torch.__version__)')
}

fresh_venv "$work/venv"
start=$(date +%s)
# The README's command, verbatim; SKBUILD_BUILD_DIR only says where the fresh build folder lies, and
# CMAKE_BUILD_PARALLEL_LEVEL keeps ninja to the machine's cores, as the other builds.
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
SKBUILD_BUILD_DIR="$build" "$work/venv/bin/pip" install --quiet --disable-pip-version-check .
echo "python: pip install . took $(($(date +%s) - start)) s"
check_import "$work/venv"

if [ "${SYMM_WHEEL:-0}" = 1 ]; then
  rm -rf "$build"
  SKBUILD_BUILD_DIR="$build" "$work/venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps \
    -w "$work/wheels" .
  fresh_venv "$work/venv2"
  "$work/venv2/bin/pip" install --quiet --disable-pip-version-check "$work"/wheels/symm-*.whl
  check_import "$work/venv2"
fi

cmake --build "$dir" --parallel "$(nproc)" --target symm_checkpoint_peer
rc=0
(cd tests/python && SYMM_CHECKPOINT_PEER="$peer" \
  "$work/venv/bin/python" -m pytest . -q -p no:cacheprovider) || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests in tests/python" >&2
  exit 1
fi
exit "$rc"
