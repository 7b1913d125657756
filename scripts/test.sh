#!/usr/bin/env bash
# Set-up command 2: install wcd-hpc with its test extras, provision the services the tests use
# (PostgreSQL), then run lint, types and the whole test-suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash slurm/dev-cluster/postgres-up
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
