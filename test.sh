#!/usr/bin/env bash
# Set up (first run only) and run the tests. Extra arguments go to pytest (e.g. --runslow).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
export NCC_DATA="${NCC_DATA:-$(python -m ncc.paths)}"   # the rule the command line follows (ncc/paths.py)
exec python -m pytest "$@"
