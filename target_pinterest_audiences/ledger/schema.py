"""The ledger's tables and its schema version."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from target_pinterest_audiences.ledger.errors import LedgerError
from target_pinterest_audiences.ledger.url import SETTING

SCHEMA_VERSION = "1"

MEMBERS = "tpa_ledger_members"
LOCKS = "tpa_ledger_locks"
META = "tpa_ledger_meta"


@dataclass(frozen=True)
class Schema:
    """A back end's ``CREATE TABLE IF NOT EXISTS`` statements, in its own dialect."""

    meta: str
    members: str
    others: tuple[str, ...] = ()  # back-end only tables (SQLite: lock rows)

    def tables(self) -> tuple[str, ...]:
        return (self.members, *self.others)


def ensure_schema(conn: Connection, schema: Schema, where: str) -> None:
    """Create the schema or check its version, inside the caller's (serialised) write transaction.

    ``where`` is the database's URL without password, for messages.
    """
    for ddl in (*schema.tables(), schema.meta):
        conn.exec_driver_sql(ddl)
    version = conn.execute(
        sa.text(f"SELECT value FROM {META} WHERE key = 'schema_version'")  # noqa: S608
    ).scalar()
    if version is None:
        conn.execute(
            sa.text(f"INSERT INTO {META} (key, value) VALUES ('schema_version', :v)"),  # noqa: S608
            {"v": SCHEMA_VERSION},
        )
    elif version != SCHEMA_VERSION:
        raise LedgerError(
            f"{SETTING} {where!r}: the ledger has schema version {version}, this version of "
            f"target-pinterest-audiences needs {SCHEMA_VERSION}"
        )
