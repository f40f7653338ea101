"""Shared helpers of the ledger's tests: digests, blobs, one mirror run."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import sqlalchemy as sa

from target_pinterest_audiences.ledger import Ledger, MembershipDiff

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "549755885175"
DIGEST = 32


def h(i: int) -> bytes:
    return hashlib.sha256(b"member-%d" % i).digest()


def hs(r: range | list[int]) -> list[bytes]:
    """One blob per digest (``k = 1``)."""
    return [h(i) for i in r]


def blob(r: range | list[int] | Iterable[bytes]) -> bytes:
    """All the digests in one blob."""
    items = list(r)
    return b"".join(h(i) if isinstance(i, int) else i for i in items)


def split(data: bytes) -> list[bytes]:
    assert len(data) % DIGEST == 0
    return [data[i : i + DIGEST] for i in range(0, len(data), DIGEST)]


def adds_of(plan: MembershipDiff, chunk: int = 7) -> list[bytes]:
    """The diff's adds, sorted (order aside)."""
    return sorted(m for block in plan.adds(chunk) for m in split(block))


def removes_of(plan: MembershipDiff, chunk: int = 7) -> list[bytes]:
    """The diff's removes, sorted."""
    return sorted(m for block in plan.removes(chunk) for m in split(block))


def new_list() -> str:
    return str(uuid.uuid4().int % 10**15)


def sync(led: Ledger, lst: str, desired: Iterable[bytes], chunk: int = 7) -> MembershipDiff:
    """One complete mirror run: diff, then confirm every add and remove."""
    with led.diff(ACCOUNT, lst, desired) as plan:
        for block in plan.adds(chunk):
            led.confirm_added(ACCOUNT, lst, block)
        for block in plan.removes(chunk):
            led.confirm_removed(ACCOUNT, lst, block)
    return plan


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    dbname = f"tpa_ledger_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
        yield sa.make_url(server_url).set(database=dbname).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.dispose()
