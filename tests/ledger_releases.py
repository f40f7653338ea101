"""Ledgers as earlier releases wrote them: their DDL verbatim, for the migration tests.

Version 1 is the first released schema: members, lock rows (SQLite) and meta. Version 2 is the
schema of the release before the run history (commit cd27c9a): members, lock rows (SQLite),
meta, per-list upload counts and the newest refresh token per app.
"""

from __future__ import annotations

import sqlalchemy as sa

V1_SQLITE = [
    "CREATE TABLE tpa_ledger_members (ad_account_id TEXT NOT NULL, list_key TEXT NOT NULL, "
    "member BLOB NOT NULL, PRIMARY KEY (ad_account_id, list_key, member)) WITHOUT ROWID",
    "CREATE TABLE tpa_ledger_locks (ad_account_id TEXT NOT NULL, list_key TEXT NOT NULL, "
    "owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, acquired_at REAL NOT NULL, "
    "heartbeat_at REAL NOT NULL, PRIMARY KEY (ad_account_id, list_key))",
    "CREATE TABLE tpa_ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
V1_POSTGRES = [
    "CREATE TABLE tpa_ledger_members (ad_account_id text NOT NULL, list_key text NOT NULL, "
    "member bytea NOT NULL, PRIMARY KEY (ad_account_id, list_key, member))",
    "CREATE TABLE tpa_ledger_meta (key text PRIMARY KEY, value text NOT NULL)",
]
V2_SQLITE = [
    "CREATE TABLE IF NOT EXISTS tpa_ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_members (ad_account_id TEXT NOT NULL, "
    "list_key TEXT NOT NULL, member BLOB NOT NULL, "
    "PRIMARY KEY (ad_account_id, list_key, member)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_uploads (ad_account_id TEXT NOT NULL, "
    "list_key TEXT NOT NULL, uploaded INTEGER, PRIMARY KEY (ad_account_id, list_key))",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_refresh_tokens (key TEXT PRIMARY KEY, "
    "refresh_token TEXT NOT NULL, expires_at REAL, issued_at REAL NOT NULL, "
    "configured_sha256 TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_locks (ad_account_id TEXT NOT NULL, "
    "list_key TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL, "
    "pid INTEGER NOT NULL, acquired_at REAL NOT NULL, heartbeat_at REAL NOT NULL, "
    "PRIMARY KEY (ad_account_id, list_key))",
]
V2_POSTGRES = [
    "CREATE TABLE IF NOT EXISTS tpa_ledger_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_members (ad_account_id text NOT NULL, "
    "list_key text NOT NULL, member bytea NOT NULL, "
    "PRIMARY KEY (ad_account_id, list_key, member))",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_uploads (ad_account_id text NOT NULL, "
    "list_key text NOT NULL, uploaded bigint, PRIMARY KEY (ad_account_id, list_key))",
    "CREATE TABLE IF NOT EXISTS tpa_ledger_refresh_tokens (key text PRIMARY KEY, "
    "refresh_token text NOT NULL, expires_at double precision, "
    "issued_at double precision NOT NULL, configured_sha256 text NOT NULL)",
]


def build_v1(url: str, members: dict[tuple[str, str], list[bytes]], version: str = "1") -> None:
    """A version-1 ledger at ``url`` holding these members (``version``: the version its meta
    row claims, to test a ledger newer than the code)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for ddl in V1_SQLITE if url.startswith("sqlite") else V1_POSTGRES:
                conn.exec_driver_sql(ddl)
            conn.execute(
                sa.text("INSERT INTO tpa_ledger_meta (key, value) VALUES ('schema_version', :v)"),
                {"v": version},
            )
            _insert_members(conn, members)
    finally:
        engine.dispose()


def build_v2(
    url: str,
    members: dict[tuple[str, str], list[bytes]],
    uploads: dict[tuple[str, str], int | None] | None = None,
    refresh_token: tuple[str, str] | None = None,
) -> None:
    """A version-2 ledger at ``url`` holding these members, upload counts and (app, token)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if url.startswith("sqlite"):
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # as the release opened it
            for ddl in V2_SQLITE if url.startswith("sqlite") else V2_POSTGRES:
                conn.exec_driver_sql(ddl)
            conn.exec_driver_sql(
                "INSERT INTO tpa_ledger_meta (key, value) VALUES ('schema_version', '2')"
            )
            _insert_members(conn, members)
            for (account, lst), count in (uploads or {}).items():
                conn.execute(
                    sa.text(
                        "INSERT INTO tpa_ledger_uploads (ad_account_id, list_key, uploaded) "
                        "VALUES (:a, :l, :n)"
                    ),
                    {"a": account, "l": lst, "n": count},
                )
            if refresh_token is not None:
                conn.execute(
                    sa.text(
                        "INSERT INTO tpa_ledger_refresh_tokens (key, refresh_token, expires_at, "
                        "issued_at, configured_sha256) VALUES (:k, :t, NULL, 1.0, 'x')"
                    ),
                    {"k": refresh_token[0], "t": refresh_token[1]},
                )
    finally:
        engine.dispose()


def _insert_members(conn: sa.Connection, members: dict[tuple[str, str], list[bytes]]) -> None:
    for (account, lst), digests in members.items():
        conn.execute(
            sa.text(
                "INSERT INTO tpa_ledger_members (ad_account_id, list_key, member) "
                "VALUES (:a, :l, :m)"
            ),
            [{"a": account, "l": lst, "m": m} for m in digests],
        )


def schema_version(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    sa.text("SELECT value FROM tpa_ledger_meta WHERE key = 'schema_version'")
                ).scalar()
            )
    finally:
        engine.dispose()
