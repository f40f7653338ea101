"""Fixtures the ledger's schema and history tests share: a fresh database per test, on SQLite
and on the tests' PostgreSQL server, and a ledger opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from target_pinterest_audiences.ledger import Ledger, open_ledger
from tests.ledger_support import fresh_database
from tests.pg import postgres_url  # noqa: F401  (session fixture)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.sqlite"
        return
    with fresh_database(str(request.getfixturevalue("postgres_url"))) as url:
        yield url


@pytest.fixture
def ledger(fresh_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        yield led
