#!/usr/bin/env bash
# Create .venv and install the pinned set, once per change of the lock files.
#   scripts/setup_env.sh        runtime set (make run)
#   scripts/setup_env.sh dev    runtime + test set, and Chromium for the browser tests (make test)
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:-runtime}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi

locks="requirements.lock pyproject.toml"
[ "$want" = dev ] && locks="$locks requirements-dev.lock"
key=$(cat $locks | sha256sum | cut -c1-16)
stamp=.venv/.legalft-$want-$key
if [ ! -f "$stamp" ]; then
    echo "setup: installing the pinned $want set into .venv (first time, or the lock changed)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.lock
    [ "$want" = dev ] && .venv/bin/python -m pip install -q -r requirements-dev.lock
    .venv/bin/python -m pip install -q --no-deps -e .
    rm -f .venv/.legalft-$want-*
    touch "$stamp"
fi

if [ "$want" = dev ]; then
    # System tools the tests use for real: Chromium (browser tests), OpenSSH server and rsync (the
    # remote GPU host of the SSH target is a real sshd on 127.0.0.1).
    missing=""
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$missing chromium"
    [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing="$missing openssh-server"
    command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
    command -v rsync >/dev/null 2>&1 || missing="$missing rsync"
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup: installing$missing for the tests (apt-get)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        else
            echo "setup: missing$missing; install with: sudo apt-get install$missing" >&2
        fi
    fi
    # SkyPilot's own environment: the tests validate every generated task with the real SkyPilot.
    scripts/setup_sky.sh
fi
