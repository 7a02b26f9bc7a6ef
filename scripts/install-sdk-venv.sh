#!/usr/bin/env bash
# The SDK environment for credo's jobs: a venv on Debian's /usr/bin/python3 with the cloud SDKs
# (azure-identity, boto3, google-auth + requests) exactly as PyPI ships them, pinned in
# scripts/sdk-requirements.txt. A job runs as its own unprivileged user (a gMSA's local account,
# credo-runner in the tests), so the venv lives outside any home, under /opt (FHS 3.0 §3.13: add-on
# software) at /opt/credo/sdk-venv, owned by root and world-readable, never writable by a job.
# Runbooks use it with `#!/opt/credo/sdk-venv/bin/python` or by running that python.
# CREDO_SDK_VENV moves it. Quick when it is up to date: one comparison of the pinned list, no pip.
set -euo pipefail

VENV=${CREDO_SDK_VENV:-/opt/credo/sdk-venv}
REQ="$(cd "$(dirname "$0")" && pwd)/sdk-requirements.txt"
STAMP="$VENV/.credo-sdk-requirements.txt"

if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$STAMP"; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-sdk-venv: $VENV is missing or out of date; run 'make install' as root" >&2
    exit 3
fi
# Debian splits venv and ensurepip out of python3 (python3-venv); install-system-packages.sh lists it,
# this covers a direct `make sdk-venv`.
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
umask 022  # every directory 0755 and file 0644 (or 0755): readable by any job user, writable by root only
/usr/bin/python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQ"
# Packages in the venv that the list no longer names would linger after an update: report them.
extra=$("$VENV/bin/python" -m pip freeze --disable-pip-version-check | grep -vxiF -f <(grep -v '^#' "$REQ" | grep .) || true)
if [ -n "$extra" ]; then
    echo "install-sdk-venv: not in sdk-requirements.txt, left installed: $(echo $extra)" >&2
fi
chmod -R a+rX "$VENV"
cp "$REQ" "$STAMP"
