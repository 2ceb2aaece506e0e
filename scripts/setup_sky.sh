#!/usr/bin/env bash
# SkyPilot in its own environment (.venv-sky, from requirements-sky.lock), once per change of the lock.
# The app reaches it only through legalft/targets/sky_adapter.py, run with .venv-sky/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
key=$(sha256sum requirements-sky.lock | cut -c1-16)
stamp=.venv-sky/.legalft-sky-$key
if [ ! -f "$stamp" ]; then
    echo "setup: installing SkyPilot into .venv-sky (first time, or the lock changed; about 90 s)"
    [ -x .venv-sky/bin/python ] || "$python" -m venv .venv-sky
    .venv-sky/bin/python -m pip install -q --upgrade pip
    .venv-sky/bin/python -m pip install -q -r requirements-sky.lock
    rm -f .venv-sky/.legalft-sky-*
    touch "$stamp"
fi
