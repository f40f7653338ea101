"""The ledger's tables, its schema version and the migrations between versions.

Version 1: members (and, on SQLite, lock rows) plus this meta table. Each later version is one
`Migration` in `MIGRATIONS`, in order: the tables it adds (DDL picked from the back end's
`Schema`) and what it does to the rows already there. A new ledger is made at version 1 and
taken through every step, exactly as an old one is, so there is one path to each version.

Version 2 adds, per list, how many records the target uploaded to it net of its removals
(``uploaded``; ``None`` for lists a version-1 ledger recorded: what it uploaded then was never
counted) and the newest refresh token per app.
Version 3 adds, per list, the records uploaded to it on Pinterest that the target accounts for
(``accounted``: what it sent as ADD in either sync mode, and uploads from elsewhere that an
explicit removal run took as handled; ``None`` for lists recorded before, until a run reads
Pinterest's counters) and the uploads from elsewhere the last mirror warning named
(``warned``); ``uploaded`` stays, read once per list to carry its verdict over. The run
history: one row per stream per run (``history.py``). And what runs created (``CREATES``: a list
by its name, an audience by its list, a lookalike by its seed, country and share), noted before
each create and given its id once Pinterest answered: a run that read the account before
another run created the object learns of it here, after taking the list's lock, instead of
reading the account again.
"""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

from target_pinterest_audiences.ledger.errors import LedgerError
from target_pinterest_audiences.ledger.url import SETTING

if t.TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

MEMBERS = "tpa_ledger_members"
LOCKS = "tpa_ledger_locks"
META = "tpa_ledger_meta"
UPLOADS = "tpa_ledger_uploads"
REFRESH_TOKENS = "tpa_ledger_refresh_tokens"
RUNS = "tpa_ledger_runs"
CREATES = "tpa_ledger_creates"


@dataclass(frozen=True)
class Schema:
    """A back end's ``CREATE TABLE IF NOT EXISTS`` (and index) statements, in its own dialect."""

    meta: str
    members: str
    uploads: str  # as version 2 made it (version 3 adds two columns)
    refresh_tokens: str
    runs: tuple[str, ...]  # the run history's table and its index
    creates: str  # the lists, audiences and lookalikes runs created (version 3)
    others: tuple[str, ...] = ()  # back-end only tables of version 1 (SQLite: lock rows)


# The run history's columns (version 3) and their kinds; each back end names the kinds in its
# own dialect. The first six are never NULL. JSON columns hold objects of counts by reason or
# code, and `extra` the STATE entry's other keys (never a value of a row).
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ad_account_id", "text"), ("stream", "text"), ("started_at", "text"),
    ("finished_at", "text"), ("outcome", "text"), ("sync_mode", "text"), ("message", "text"),
    ("segment_name", "text"), ("customer_list_id", "text"), ("audience_id", "text"),
    ("list_type", "text"), ("rows_read", "int"), ("records_added", "int"),
    ("records_removed", "int"), ("records_invalid", "int"), ("invalid_by_reason", "text"),
    ("pinterest_exceptions", "text"), ("list_status", "text"), ("audience_status", "text"),
    ("audience_size", "int"), ("members", "int"), ("match_rate", "real"),
    ("synced_at", "text"), ("calls", "int"), ("retries", "int"),
    ("quota_wait_seconds", "real"), ("extra", "text"),
)  # fmt: skip
_REQUIRED_RUN_COLUMNS = 6


def runs_ddl(id_column: str, kinds: dict[str, str]) -> tuple[str, ...]:
    """The run history's table and index in a dialect: ``id_column`` is its auto-numbered
    primary key (the order runs were written in), ``kinds`` names its types."""
    columns = ", ".join(
        f"{name} {kinds[kind]}{' NOT NULL' if n < _REQUIRED_RUN_COLUMNS else ''}"
        for n, (name, kind) in enumerate(RUN_COLUMNS)
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {RUNS} ({id_column}, {columns})",
        f"CREATE INDEX IF NOT EXISTS {RUNS}_by_stream ON {RUNS} (ad_account_id, stream, id)",
    )


@dataclass(frozen=True)
class Migration:
    """One step: from the version before it to ``version``."""

    version: str
    tables: Callable[[Schema], tuple[str, ...]]  # the DDL it runs (each IF NOT EXISTS)
    rows: Callable[[Connection], None] | None = None  # then, what it does to existing rows
    about: str = ""


def _count_uploads_as_unknown(conn: Connection) -> None:
    # Every list recorded so far gets an unknown upload count (NULL).
    conn.exec_driver_sql(
        f"INSERT INTO {UPLOADS} (ad_account_id, list_key) "  # noqa: S608
        f"SELECT DISTINCT ad_account_id, list_key FROM {MEMBERS}"
    )


def _account_for_uploads(conn: Connection) -> None:
    # What the target accounts for of Pinterest's upload counter, and the pending warning.
    conn.exec_driver_sql(f"ALTER TABLE {UPLOADS} ADD COLUMN accounted BIGINT")
    conn.exec_driver_sql(f"ALTER TABLE {UPLOADS} ADD COLUMN warned BIGINT NOT NULL DEFAULT 0")


# In order. A step is never changed once released: a new need is a new step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "2",
        lambda s: (s.uploads, s.refresh_tokens),
        _count_uploads_as_unknown,
        about="records uploaded per list, and the newest refresh token",
    ),
    Migration(
        "3",
        lambda s: (*s.runs, s.creates),
        _account_for_uploads,
        about="uploads the target accounts for per list, the run history, and the creates",
    ),
)
BASE_VERSION = "1"
SCHEMA_VERSION = MIGRATIONS[-1].version
_VERSIONS = (BASE_VERSION, *(m.version for m in MIGRATIONS))


def stored_version(conn: Connection) -> str | None:
    """The schema version the ledger's meta table records (None: none yet)."""
    import sqlalchemy as sa

    version = conn.execute(
        sa.text(f"SELECT value FROM {META} WHERE key = 'schema_version'")  # noqa: S608
    ).scalar()
    return None if version is None else str(version)


def ensure_schema(conn: Connection, schema: Schema, where: str) -> None:
    """Create or migrate the schema, inside the caller's (serialised) write transaction.

    ``where`` is the database's URL without password, for messages.
    """
    import sqlalchemy as sa

    conn.exec_driver_sql(schema.meta)
    version = stored_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version not in _VERSIONS:
        raise LedgerError(
            f"{SETTING} {where!r}: the ledger has schema version {version}, this version of "
            f"target-pinterest-audiences needs {SCHEMA_VERSION}"
        )
    fresh = version is None
    if fresh:  # a new ledger: version 1, then every step as for an old one
        for ddl in (schema.members, *schema.others):
            conn.exec_driver_sql(ddl)
        conn.execute(
            sa.text(f"INSERT INTO {META} (key, value) VALUES ('schema_version', :v)"),  # noqa: S608
            {"v": BASE_VERSION},
        )
        version = BASE_VERSION
    old = version
    for step in MIGRATIONS[_VERSIONS.index(version) :]:
        for ddl in step.tables(schema):
            conn.exec_driver_sql(ddl)
        if step.rows is not None:
            step.rows(conn)
        version = step.version
    conn.execute(
        sa.text(f"UPDATE {META} SET value = :v WHERE key = 'schema_version'"),  # noqa: S608
        {"v": version},
    )
    if not fresh:
        log.info("Migrated the ledger %s from schema version %s to %s.", where, old, version)
