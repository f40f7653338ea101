"""The ledger's tables, its schema version and the migrations between versions.

Version 1: members (and, on SQLite, lock rows) plus this meta table.
Version 2 adds, per list, how many records the target uploaded to it net of its removals
(``uploaded``; ``None`` for lists a version-1 ledger recorded) and the newest refresh token per
app.
Version 3 (issue 20.1) adds, per list, the records uploaded to it on Pinterest that the target
accounts for (``accounted``: what it sent as ADD in either sync mode, and uploads from elsewhere
that an explicit removal run took as handled; ``None`` for lists recorded before, until a run
reads Pinterest's counters) and the uploads from elsewhere the last mirror warning named
(``warned``). ``uploaded`` stays, read once per list to carry its verdict over.

A new ledger gets the latest tables at once; an older one runs the steps from its version on,
in the caller's serialised write transaction, so two runs opening it at once migrate it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from target_pinterest_audiences.ledger.errors import LedgerError
from target_pinterest_audiences.ledger.url import SETTING

log = logging.getLogger(__name__)

MEMBERS = "tpa_ledger_members"
LOCKS = "tpa_ledger_locks"
META = "tpa_ledger_meta"
UPLOADS = "tpa_ledger_uploads"
REFRESH_TOKENS = "tpa_ledger_refresh_tokens"


@dataclass(frozen=True)
class Schema:
    """A back end's ``CREATE TABLE IF NOT EXISTS`` statements (the latest version), in its own
    dialect."""

    meta: str
    members: str
    uploads: str
    refresh_tokens: str
    others: tuple[str, ...] = ()  # back-end only tables (SQLite: lock rows)

    def tables(self) -> tuple[str, ...]:
        return (self.members, self.uploads, self.refresh_tokens, *self.others)


def _v1_to_v2(conn: Connection, schema: Schema) -> None:
    """Upload counts (every list recorded so far: unknown) and the refresh tokens' table."""
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {UPLOADS} (ad_account_id TEXT NOT NULL, "
        "list_key TEXT NOT NULL, uploaded BIGINT, PRIMARY KEY (ad_account_id, list_key))"
    )
    conn.exec_driver_sql(schema.refresh_tokens)
    conn.exec_driver_sql(
        f"INSERT INTO {UPLOADS} (ad_account_id, list_key) "  # noqa: S608
        f"SELECT DISTINCT ad_account_id, list_key FROM {MEMBERS}"
    )


def _v2_to_v3(conn: Connection, schema: Schema) -> None:
    """What the target accounts for of Pinterest's upload counter, and the pending warning."""
    conn.exec_driver_sql(f"ALTER TABLE {UPLOADS} ADD COLUMN accounted BIGINT")
    conn.exec_driver_sql(f"ALTER TABLE {UPLOADS} ADD COLUMN warned BIGINT NOT NULL DEFAULT 0")


# MIGRATIONS[k] takes a ledger from version k + 1 to version k + 2.
MIGRATIONS: tuple[Callable[[Connection, Schema], None], ...] = (_v1_to_v2, _v2_to_v3)
SCHEMA_VERSION = str(len(MIGRATIONS) + 1)


def ensure_schema(conn: Connection, schema: Schema, where: str) -> None:
    """Create or migrate the schema, inside the caller's (serialised) write transaction.

    ``where`` is the database's URL without password, for messages.
    """
    conn.exec_driver_sql(schema.meta)
    version = conn.execute(
        sa.text(f"SELECT value FROM {META} WHERE key = 'schema_version'")  # noqa: S608
    ).scalar()
    if version == SCHEMA_VERSION:
        return
    if version is None:
        for ddl in schema.tables():
            conn.exec_driver_sql(ddl)
        conn.execute(
            sa.text(f"INSERT INTO {META} (key, value) VALUES ('schema_version', :v)"),  # noqa: S608
            {"v": SCHEMA_VERSION},
        )
        return
    known = [str(n) for n in range(1, len(MIGRATIONS) + 1)]
    if version not in known:
        raise LedgerError(
            f"{SETTING} {where!r}: the ledger has schema version {version}, this version of "
            f"target-pinterest-audiences needs {SCHEMA_VERSION}"
        )
    for step in MIGRATIONS[int(version) - 1 :]:
        step(conn, schema)
    for ddl in schema.tables():  # tables added since without a step of their own
        conn.exec_driver_sql(ddl)
    conn.execute(
        sa.text(f"UPDATE {META} SET value = :v WHERE key = 'schema_version'"),  # noqa: S608
        {"v": SCHEMA_VERSION},
    )
    log.info(
        "Migrated the mirror ledger %s from schema version %s to %s.",
        where,
        version,
        SCHEMA_VERSION,
    )
