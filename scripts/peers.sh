#!/usr/bin/env bash
# Install the independent peers the end-to-end suite runs against (idempotent, quick when
# already installed): a Python venv with PyJWT and schemathesis (tests/peers/requirements.txt)
# under target/peers/venv, and the npm `jose` package (tests/peers/jose, from its lock file).
# Run by `make test`; the tests that need the peers also run it themselves.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${AUTH_TEST_PEERS_DIR:-$root/target/peers}"
mkdir -p "$peers"
exec 9>"$peers/.lock"
flock 9

requirements="$root/tests/peers/requirements.txt"
venv="$peers/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "peers: creating $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" > "$stamp"
fi

jose="$root/tests/peers/jose"
lock_stamp="$jose/node_modules/.lock.sha256"
want="$(sha256sum "$jose/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$lock_stamp" 2>/dev/null)" != "$want" ]]; then
  echo "peers: npm ci in $jose" >&2
  (cd "$jose" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$lock_stamp"
fi
