#!/usr/bin/env bash
# The GPU host's environment for a remote run: ROOT/venv from ROOT/app/requirements.lock, built once
# and kept while the lock file is unchanged (a stamp keyed on its hash), so a second run skips it.
#   scripts/remote_setup.sh ROOT
set -euo pipefail
root=${1:?usage: remote_setup.sh ROOT}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
key=$(sha256sum "$root/app/requirements.lock" | cut -c1-16)
stamp="$root/venv/.legalft-$key"
if [ -f "$stamp" ]; then
    echo "remote_setup: environment ready ($stamp)"
    exit 0
fi
start=$(date +%s)
[ -x "$root/venv/bin/python" ] || "$python" -m venv "$root/venv"
"$root/venv/bin/python" -m pip install -q --upgrade pip
"$root/venv/bin/python" -m pip install -q -r "$root/app/requirements.lock"
rm -f "$root"/venv/.legalft-*
touch "$stamp"
echo "remote_setup: environment built in $(( $(date +%s) - start )) s"
