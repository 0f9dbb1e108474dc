#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs `symm` with its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh symm_app
exec ./build/apps/symm/symm "$@"
