"""Membership ledger for ``sync_mode=mirror``.

Pinterest cannot tell us who is in a customer list, so in mirror mode the target remembers
which member digests Pinterest has accepted: only the 32-byte SHA-256 digests, never raw
identifiers. Members travel as blobs (``k * 32`` bytes, ``k`` digests concatenated).

    with open_ledger(settings.ledger_url, base_dir=Path.cwd()) as ledger:
        with ledger.lock(account, list_key), ledger.diff(account, list_id, blobs) as diff:
            for blob in diff.adds(chunk): ...; ledger.confirm_added(account, list_id, blob)

Modules: ``url`` (what ``ledger_url`` may say), ``base`` (the interface and the SQL both back
ends share), ``sqlite`` and ``postgres`` (one back end each), ``schema`` (tables, version,
migration), ``diff`` (a diff's result), ``tokens`` (the refresh token kept in the database),
``blobs`` and ``errors``.
"""

from __future__ import annotations

from pathlib import Path

from target_pinterest_audiences.ledger.base import Ledger, UploadTally
from target_pinterest_audiences.ledger.diff import MembershipDiff, Partitioned
from target_pinterest_audiences.ledger.errors import LedgerBusy, LedgerError
from target_pinterest_audiences.ledger.tokens import LedgerTokenStore, StoredRefreshToken
from target_pinterest_audiences.ledger.url import parse_ledger_url
from target_pinterest_audiences.workdir import WORK_DIR_NAME

__all__ = [
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "LedgerTokenStore",
    "MembershipDiff",
    "Partitioned",
    "StoredRefreshToken",
    "UploadTally",
    "open_ledger",
]


def open_ledger(url: str | None, *, base_dir: Path) -> Ledger:
    """The ledger at ``url`` (``ledger_url``), or the default SQLite file under ``base_dir``.

    Raises :class:`LedgerError` for a URL it cannot use; the database itself is opened (and
    created or migrated) on first use.
    """
    parsed = parse_ledger_url(url, base_dir)
    if parsed.get_backend_name() == "postgresql":
        from target_pinterest_audiences.ledger.postgres import PostgresLedger

        return PostgresLedger(parsed)
    from target_pinterest_audiences.ledger.sqlite import SqliteLedger

    return SqliteLedger(parsed, private_dir=base_dir / WORK_DIR_NAME if url is None else None)
