#!/usr/bin/env bash
# The one place that installs what symm needs on Debian 12. Safe to run repeatedly.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          libtorch-dev libeigen3-dev libopenblas0-pthread
          libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Without the pthread OpenBLAS as the active BLAS/LAPACK, LibTorch falls back to the reference
# implementations and runs 20-50x slower.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
for lib in libblas.so.3 liblapack.so.3; do
  name="$lib-$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
  current=$(update-alternatives --query "$name" 2>/dev/null | awk '/^Value:/{print $2}')
  case "$current" in *openblas-pthread*) continue ;; esac
  alt=$(update-alternatives --list "$name" 2>/dev/null | grep openblas-pthread | head -n1 || true)
  [ -n "$alt" ] && $SUDO update-alternatives --set "$name" "$alt"
done
exit 0
