#!/usr/bin/env bash
# Create .venv and install wcd-hpc into it (with the test extras when called with --test).
# PyTorch is pinned to 2.13.0 and installed first: a bare `torch` requirement would pull a
# multi-GB CUDA build on a machine without one, and the project's range admits 2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing python3 and python3-venv with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
  else
    echo "setup: need python3 with the venv module (Debian: sudo apt-get install python3-venv)" >&2
    exit 1
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/python" -c 'import torch' >/dev/null 2>&1; then
  echo "setup: installing torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
fi
if [ "${1:-}" = "--test" ]; then
  echo "setup: installing wcd-hpc with test extras"
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  echo "setup: installing the external ViT plugin (plugins/wcd-hpc-vit) used by the tests"
  "$VENV/bin/python" -m pip install -q --no-deps -e ./plugins/wcd-hpc-vit
else
  echo "setup: installing wcd-hpc"
  "$VENV/bin/python" -m pip install -q -e .
fi
