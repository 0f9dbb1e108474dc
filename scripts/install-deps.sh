#!/usr/bin/env bash
# The one place that installs what symm needs on Debian 12. Safe to run repeatedly; installs only what is
# missing. Two LibTorch builds: Debian's LibTorch 1.13 (CPU, the default build) and LibTorch 2.x as shipped
# inside PyPI's torch wheel (a CUDA build), in a virtual environment of the project's at $SYMM_VENV.
#   SYMM_VENV   where the virtual environment lives (default /opt/symm-venv, outside the checkout so that
#               every clone and CI run shares the multi-gigabyte wheel)
#   SYMM_NO_VENV=1  skip the virtual environment (Debian packages only)
set -euo pipefail
SYMM_VENV=${SYMM_VENV:-/opt/symm-venv}
TORCH_PIN=torch==2.15.0   # CUDA 13 build, matching the toolkit's nvcc 13

packages=(build-essential cmake ninja-build pkg-config ccache
          libtorch-dev libeigen3-dev libopenblas0-pthread
          libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libgloo-dev
          python3 python3-venv gfortran
          clang-14 libclang-rt-14-dev)   # clang-14: the sanitizer and libFuzzer build (scripts/sanitize.sh)
# Python packages of the virtual environment besides torch: the bindings' build backend and tests, and
# symm_learning (on escnn) for the interop tests. gfortran builds escnn's py3nj. escnn's lie_learn needs
# NumPy 1, so NumPy is pinned; the ONNX export tests' onnx, onnxruntime and onnxscript (torch.onnx.export's
# dynamo exporter) are versions that run on it, ml-dtypes (onnx's) the last release built for NumPy 1.
pip_packages=(scikit-build-core==1.1.2 pytest==9.2.0 symm-learning==0.8.1 escnn==1.0.11 numpy==1.26.4
              onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2 ml-dtypes==0.5.4)

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Without the pthread OpenBLAS as the active BLAS/LAPACK, LibTorch falls back to the reference
# implementations and runs 20-50x slower.
for lib in libblas.so.3 liblapack.so.3; do
  name="$lib-$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
  current=$(update-alternatives --query "$name" 2>/dev/null | awk '/^Value:/{print $2}')
  case "$current" in *openblas-pthread*) continue ;; esac
  alt=$(update-alternatives --list "$name" 2>/dev/null | grep openblas-pthread | head -n1 || true)
  [ -n "$alt" ] && $SUDO update-alternatives --set "$name" "$alt"
done

# LibTorch 2.x from the torch wheel. The interpreter is the first python3 that can make a venv (pyenv's or
# Debian's). pip decides what is missing against the pins, so a second run only checks.
if [ "${SYMM_NO_VENV:-0}" != 1 ]; then
  if [ ! -x "$SYMM_VENV/bin/python" ]; then
    echo "creating the virtual environment $SYMM_VENV"
    python3 -m venv "$SYMM_VENV"
  fi
  want=("$TORCH_PIN" "${pip_packages[@]}")
  if ! "$SYMM_VENV/bin/python" - "${want[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for req in sys.argv[1:]:
    name, _, pin = req.partition("==")
    try:
        if pin and version(name) != pin: sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
  then
    echo "installing into $SYMM_VENV: ${want[*]}"
    "$SYMM_VENV/bin/pip" install -q --disable-pip-version-check "${want[@]}"
  fi
fi
exit 0
