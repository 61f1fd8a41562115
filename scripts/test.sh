#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, the firmware tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3 CUDA_VISIBLE_DEVICES=""
exec python3 -m pytest -q -ra "$@"
