#!/usr/bin/env bash
# Set-up command 2: install wcd-hpc with its test extras, provision the services the tests use
# (PostgreSQL, a one-node Slurm with slurmdbd on MariaDB), then run lint, types, the import
# layers and the whole test-suite. `.ci/run` calls exactly this. Without root the Slurm cluster
# cannot be started: its tests then skip (outside CI) with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
# Every pytest run gets its own base directory in one scratch directory, removed when this script
# exits: the shared-database and masking tests write experiment files holding the dev role's
# password inline (what they check is that it never reaches the output), and pytest's default
# /tmp/pytest-of-USER would keep the last three runs of them. Separate directories, because a run
# that finishes removes its own and the lanes finish apart. WCD_HPC_KEEP_TEST_TMP=1 keeps them
# (for a failing test's files); the script then says where they are.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/wcd-hpc-tests.XXXXXX")
cleanup() {
  if [ "${WCD_HPC_KEEP_TEST_TMP:-}" = 1 ]; then
    echo "test: the tests' files are kept in $scratch (WCD_HPC_KEEP_TEST_TMP=1)"
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT
bash scripts/setup.sh --test
# The services and the slow checks run side by side, their lines prefixed with their names:
# starting PostgreSQL and Slurm mostly waits, and mypy and the documentation build use one core
# each. All of them must pass before any test runs.
prefixed() {  # NAME COMMAND...: COMMAND's lines prefixed with [NAME]; its exit status
  local name=$1
  shift
  "$@" 2>&1 | sed -u "s/^/[$name] /"
  return "${PIPESTATUS[0]}"
}
side() {  # NAME COMMAND...: prefixed, in the background; `wait` on pids[i] gives names[i]'s status
  prefixed "$@" &
  pids+=("$!")
  names+=("$1")
}
services() {
  bash slurm/dev-cluster/postgres-up
  if [ "$(id -u)" = 0 ]; then
    bash slurm/dev-cluster/up
  else
    echo "test: not root, so no dev Slurm cluster (slurm/dev-cluster/up); Slurm tests will skip"
  fi
}
pids=()
names=()
side services services
# The documentation site, warnings as errors (broken links and anchors fail); its reference
# pages are generated from the code by scripts/docs_hooks.py. Built into the scratch directory.
side docs env NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$scratch/site"
side mypy .venv/bin/mypy
failed=()
.venv/bin/ruff check src tests benchmarks scripts || failed+=(ruff)
.venv/bin/ruff format --check src tests benchmarks scripts || failed+=("ruff format")
.venv/bin/lint-imports --no-cache || failed+=(lint-imports)
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed+=("${names[$i]}")
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "test: failed before any test ran: ${failed[*]}" >&2
  exit 1
fi
# Arguments go to one pytest run as they are (`bash scripts/test.sh tests/unit/queue -k claim`).
if [ "$#" -gt 0 ]; then
  .venv/bin/python -m pytest --basetemp "$scratch/args" "$@"
  exit
fi
# Two stages: the in-process unit tests first, on every core (pytest-xdist), so that a broken
# package fails in a few minutes; then the integration tests (real services, end-to-end sweeps)
# in two lanes side by side, each one test at a time: the tests marked shared_services (the one
# Slurm queue, the shared PostgreSQL database; tests/conftest.py says why they may not overlap)
# and all the others. Each lane's lines carry its name; the 20 slowest tests of each stage and
# lane are listed: CI should stay near 20 minutes.
echo "test: set-up, services and checks took $SECONDS s"
.venv/bin/python -m pytest -n auto --dist load --durations=20 --basetemp "$scratch/unit" tests/unit
echo "test: $SECONDS s so far, the unit stage included"
lane() {  # NAME MARKER: one pytest run over tests/integration, its lines prefixed with [NAME]
  prefixed "$1" .venv/bin/python -m pytest --durations=20 --basetemp "$scratch/$1" -m "$2" \
    tests/integration
}
lane services "shared_services" &
services=$!
lane others "not shared_services" &
others=$!
status=0
wait "$services" || status=$?
wait "$others" || status=$?
echo "test: $SECONDS s in all"
exit "$status"
