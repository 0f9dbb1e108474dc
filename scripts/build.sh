#!/usr/bin/env bash
# Installs what is missing and builds symm (Release): the given targets, or everything.
#   SYMM_TORCH=debian  (default) Debian's LibTorch 1.13, CPU, into build/
#   SYMM_TORCH=wheel   LibTorch 2.x from the torch wheel in the project's virtual environment (a CUDA build),
#                      into build-torch2/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
case "${SYMM_TORCH:-debian}" in
  debian) dir=build; prefix=() ;;
  wheel)
    dir=build-torch2
    prefix=(-DCMAKE_PREFIX_PATH="$("${SYMM_VENV:-/opt/symm-venv}/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')") ;;
  *) echo "SYMM_TORCH must be debian or wheel, got '${SYMM_TORCH}'" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${prefix[@]}" > "$dir.configure.log" 2>&1 ||
  { cat "$dir.configure.log"; exit 1; }
rm -f "$dir.configure.log"
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" --parallel "$(nproc)" "${targets[@]}"
