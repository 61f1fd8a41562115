#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, the firmware tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3 CUDA_VISIBLE_DEVICES=""
# One pytest worker per core (at most 4), each taking whole test files so a file's session
# fixtures (trained and converted models) are built once; EDGERNN_TEST_WORKERS=0 runs serially.
workers=${EDGERNN_TEST_WORKERS:-$(python3 -c "import os; print(min(4, len(os.sched_getaffinity(0))))")}
exec python3 -m pytest -q -ra -n "$workers" --dist loadfile --durations=25 "$@"
