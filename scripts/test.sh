#!/usr/bin/env bash
# Set up (once) and run the whole test suite. Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server binaries: the ledger's PostgreSQL back end and the Meltano end-to-end test
# run against a real server that the tests start and stop themselves.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  else
    echo "note: no PostgreSQL server binaries; install the 'postgresql' package for the" \
         "PostgreSQL ledger and Meltano tests (they are skipped, or fail under CI=true)" >&2
  fi
fi

# Headless Chromium (Debian's package): the HTML report is looked at in a real browser
# (tests/e2e/test_report_browser.py). Its own block: PostgreSQL above may come another way.
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
