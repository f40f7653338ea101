"""The ledger's tables, its schema version and the migrations between versions.

Version 1: members (and, on SQLite, lock rows) plus this meta table.
Version 2 adds, per list, how many records the target uploaded to it (``None`` for lists a
version-1 ledger recorded: what it uploaded then was never counted) and the newest refresh
token per app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from target_pinterest_audiences.ledger.errors import LedgerError
from target_pinterest_audiences.ledger.url import SETTING

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"

MEMBERS = "tpa_ledger_members"
LOCKS = "tpa_ledger_locks"
META = "tpa_ledger_meta"
UPLOADS = "tpa_ledger_uploads"
REFRESH_TOKENS = "tpa_ledger_refresh_tokens"


@dataclass(frozen=True)
class Schema:
    """A back end's ``CREATE TABLE IF NOT EXISTS`` statements, in its own dialect."""

    meta: str
    members: str
    uploads: str
    refresh_tokens: str
    others: tuple[str, ...] = ()  # back-end only tables (SQLite: lock rows)

    def tables(self) -> tuple[str, ...]:
        return (self.members, self.uploads, self.refresh_tokens, *self.others)


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
    if version is not None and version != "1":
        raise LedgerError(
            f"{SETTING} {where!r}: the ledger has schema version {version}, this version of "
            f"target-pinterest-audiences needs {SCHEMA_VERSION}"
        )
    for ddl in schema.tables():
        conn.exec_driver_sql(ddl)
    if version is None:
        conn.execute(
            sa.text(f"INSERT INTO {META} (key, value) VALUES ('schema_version', :v)"),  # noqa: S608
            {"v": SCHEMA_VERSION},
        )
        return
    # 1 -> 2: every list recorded so far gets an unknown upload count (NULL).
    conn.exec_driver_sql(
        f"INSERT INTO {UPLOADS} (ad_account_id, list_key) "  # noqa: S608
        f"SELECT DISTINCT ad_account_id, list_key FROM {MEMBERS}"
    )
    conn.execute(
        sa.text(f"UPDATE {META} SET value = :v WHERE key = 'schema_version'"),  # noqa: S608
        {"v": SCHEMA_VERSION},
    )
    log.info("Migrated the mirror ledger %s from schema version 1 to %s.", where, SCHEMA_VERSION)
