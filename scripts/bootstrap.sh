#!/usr/bin/env bash
# Create .venv (when missing) and install Allele with every extra it is tested with.
# Called by the Makefile; safe to run again (pip skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch is pinned (the CPU build on this machine's disk); llama-cpp-python builds from source once
# (about 6 minutes on 2 cores) and pip caches the wheel afterwards.
echo ">> installing allele[all,dev] into $VENV (the first time takes several minutes)"
"$VENV/bin/python" -m pip install --quiet -e '.[all,dev]'
