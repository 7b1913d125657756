#!/usr/bin/env bash
# Set-up command 1: install wcd-hpc into .venv and run the quickstart sweep on embedded defaults
# (the local profile: workers on this machine, journal storage under runs/, simulated gamma/proton footprints).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/wcd-hpc sweep examples/quickstart.yaml --profile local "$@"
