"""The ledger database: the membership ``sync_mode=mirror`` confirmed, and the run history.

Pinterest cannot tell us who is in a customer list, so in mirror mode the target remembers
which member digests Pinterest has accepted: only the 32-byte SHA-256 digests, never raw
identifiers. Members travel as blobs (``k * 32`` bytes, ``k`` digests concatenated).

    with open_ledger(settings.ledger_url, base_dir=Path.cwd()) as ledger:
        with ledger.lock(account, list_key), ledger.diff(account, list_id, blobs) as diff:
            for blob in diff.adds(chunk): ...; ledger.confirm_added(account, list_id, blob)

Modules: ``url`` (what ``ledger_url`` may say), ``base`` (the interface and the SQL both back
ends share), ``sqlite`` and ``postgres`` (one back end each), ``schema`` (tables, version,
migration), ``diff`` (a diff's result), ``tokens`` (the refresh token kept in the database),
``history`` (the run history: one row per stream per run), ``blobs`` and ``errors``.
"""

from __future__ import annotations

import importlib
import typing as t
from pathlib import Path

from target_pinterest_audiences.ledger.diff import MembershipDiff, Partitioned
from target_pinterest_audiences.ledger.errors import LedgerBusy, LedgerError
from target_pinterest_audiences.workdir import WORK_DIR_NAME

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger.base import Ledger, UploadTally
    from target_pinterest_audiences.ledger.history import LedgerHistory, RunRecord
    from target_pinterest_audiences.ledger.tokens import LedgerTokenStore, StoredRefreshToken

__all__ = [
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "LedgerHistory",
    "LedgerTokenStore",
    "MembershipDiff",
    "Partitioned",
    "RunRecord",
    "StoredRefreshToken",
    "UploadTally",
    "open_ledger",
]

# Imported on first use: SQLAlchemy costs a run a good part of its start (the run history opens
# the ledger on a thread of its own, while the credentials are checked).
_LAZY = {
    "Ledger": "base",
    "UploadTally": "base",
    "LedgerHistory": "history",
    "RunRecord": "history",
    "LedgerTokenStore": "tokens",
    "StoredRefreshToken": "tokens",
}


def __getattr__(name: str) -> t.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def open_ledger(url: str | None, *, base_dir: Path) -> Ledger:
    """The ledger at ``url`` (``ledger_url``), or the default SQLite file under ``base_dir``.

    Raises :class:`LedgerError` for a URL it cannot use; the database itself is opened (and
    created or migrated) on first use.
    """
    from target_pinterest_audiences.ledger.url import parse_ledger_url

    parsed = parse_ledger_url(url, base_dir)
    if parsed.get_backend_name() == "postgresql":
        from target_pinterest_audiences.ledger.postgres import PostgresLedger

        return PostgresLedger(parsed)
    from target_pinterest_audiences.ledger.sqlite import SqliteLedger

    return SqliteLedger(parsed, private_dir=base_dir / WORK_DIR_NAME if url is None else None)
