#!/usr/bin/env bash
# The main job: set up (first run only), then reproduce the device-mapping table (Table 4 of NCC and
# ProGraML) on CPU: every fast row on both protocols and both platforms, printed and saved to
# results/devmap/devmap.{csv,md}. Extra arguments go to `ncc reproduce devmap` (e.g. --models all).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
export NCC_DATA="${NCC_DATA:-$(python -m ncc.paths)}"   # the rule the command line follows (ncc/paths.py)
ncc doctor
ncc reproduce devmap --workers 2 "$@"
