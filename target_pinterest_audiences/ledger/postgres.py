"""PostgreSQL back end, through psycopg 3 (``postgresql+psycopg://...``).

A list's lock is a session-level advisory lock: the server releases it as soon as the holder's
session ends, however the holder died. One session holds every lock of the process (streams
syncing side by side lock their lists on it), so locks cost one connection, not one each.
A diff reads a list's members partition by partition, each concatenated by the server into
one value.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from target_pinterest_audiences.ledger.base import Ledger
from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE, split
from target_pinterest_audiences.ledger.errors import LedgerBusy
from target_pinterest_audiences.ledger.schema import (
    CREATES,
    MEMBERS,
    META,
    REFRESH_TOKENS,
    UPLOADS,
    Schema,
    runs_ddl,
)
from target_pinterest_audiences.ledger.url import connect_args, require_psycopg

SCHEMA = Schema(
    meta=f"CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL)",
    members=f"CREATE TABLE IF NOT EXISTS {MEMBERS} (ad_account_id text NOT NULL, "
    "list_key text NOT NULL, member bytea NOT NULL, "
    "PRIMARY KEY (ad_account_id, list_key, member))",
    uploads=f"CREATE TABLE IF NOT EXISTS {UPLOADS} (ad_account_id text NOT NULL, "
    "list_key text NOT NULL, uploaded bigint, PRIMARY KEY (ad_account_id, list_key))",
    refresh_tokens=f"CREATE TABLE IF NOT EXISTS {REFRESH_TOKENS} (key text PRIMARY KEY, "
    "refresh_token text NOT NULL, expires_at double precision, "
    "issued_at double precision NOT NULL, configured_sha256 text NOT NULL)",
    creates=f"CREATE TABLE IF NOT EXISTS {CREATES} (ad_account_id text NOT NULL, "
    "kind text NOT NULL, key text NOT NULL, object_id text, noted_at double precision NOT NULL, "
    "PRIMARY KEY (ad_account_id, kind, key))",
    runs=runs_ddl(
        "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        {"text": "text", "int": "bigint", "real": "double precision"},
    ),
)

_KNOWN = (
    f"SELECT string_agg(member, ''::bytea) FROM {MEMBERS} "  # noqa: S608
    "WHERE ad_account_id = %s AND list_key = %s AND member >= %s"
)

# Arbitrary constant used to serialise schema creation.
_SCHEMA_LOCK_KEY = 0x7470_615F_6C65_6467  # "tpa_ledg"


class PostgresLedger(Ledger):
    """The ledger in a PostgreSQL database."""

    # Two server processes share the rows' work (under one, a first fill used one core).
    concurrent_writes = 2

    def __init__(self, url: URL) -> None:
        self._locks: _LockSession | None = None
        self._locks_guard = threading.Lock()
        psycopg = require_psycopg(url)
        super().__init__(url, driver_errors=(psycopg.Error,))

    def _create_engine(self) -> Engine:
        return sa.create_engine(
            self._url, pool_pre_ping=True, pool_use_lifo=True, connect_args=connect_args(self._url)
        )

    def _schema(self) -> Schema:
        return SCHEMA

    def _lock_schema(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")

    def _opened(self) -> None:
        pass  # nothing on the server side to adjust

    # ---- locks: session-level advisory locks ----------------------------------------

    @contextmanager
    def _hold(
        self, scope: str, name: str, *, wait_seconds: float, busy: Callable[[str], str]
    ) -> Iterator[None]:
        key = _lock_key(scope, name)
        session = self._lock_session()
        deadline = time.monotonic() + wait_seconds
        with self._translated("taking a ledger lock"):
            while not session.try_lock(key):
                if time.monotonic() >= deadline:
                    raise LedgerBusy(
                        busy("; the lock is released as soon as that run's database session ends")
                    )
                time.sleep(self.poll_seconds)
        try:
            yield
        finally:
            session.unlock(key)

    def _lock_session(self) -> _LockSession:
        engine = self._ensure()
        with self._locks_guard:
            if self._locks is None:
                self._locks = _LockSession(
                    lambda: engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                )
            return self._locks

    def close(self) -> None:
        with self._locks_guard:
            self._locks = None
        super().close()

    # ---- diff ---------------------------------------------------------------------------

    def _known_partition(
        self, conn: Connection, ad_account_id: str, list_key: str, first: int
    ) -> bytes:
        # One row per partition: the server concatenates the members (a primary key range;
        # their order does not matter, the diff sorts what it keeps of them).
        raw = conn.connection.driver_connection
        assert raw is not None
        low = bytes([first])
        with raw.cursor(binary=True) as cur:
            if first < 255:
                cur.execute(_KNOWN + " AND member < %s", (ad_account_id, list_key, low,
                                                          bytes([first + 1])))  # fmt: skip
            else:
                cur.execute(_KNOWN, (ad_account_id, list_key, low))
            row = cur.fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    # ---- confirmations ----------------------------------------------------------------

    def _insert_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        # COPY first: members the diff found missing are new, and COPY writes them about 2.5x
        # faster than INSERT ... ON CONFLICT (which probes the index before every row). Should
        # one be there after all (a confirmation repeated), the savepoint takes the COPY back
        # and the INSERT skips what is there.
        import psycopg

        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute("SAVEPOINT tpa_copy_members")
            try:
                with cur.copy(_COPY_MEMBERS) as copy:
                    copy.write(_copy_rows(ad_account_id, list_key, blob))
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT tpa_copy_members")
                cur.execute(
                    f"INSERT INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
                    f"SELECT %s, %s, member FROM ({_CUT_BLOB}) AS cut ON CONFLICT DO NOTHING",
                    (ad_account_id, list_key, blob, len(blob) // DIGEST_SIZE - 1),
                )
            cur.execute("RELEASE SAVEPOINT tpa_copy_members")

    def _delete_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        # The blob is sent once and cut by the server into an array whose members drive the
        # primary key's index (faster than a bound array: no per-member quoting).
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute(
                f"DELETE FROM {MEMBERS} WHERE ad_account_id = %s AND list_key = %s "  # noqa: S608
                f"AND member = ANY(ARRAY({_CUT_BLOB}))",
                (ad_account_id, list_key, blob, len(blob) // DIGEST_SIZE - 1),
            )


# The members 0..n of a blob (parameters: the blob, n), each its 32 bytes, cut by the server.
_CUT_BLOB = (
    f"SELECT substring(%s::bytea FROM i * {DIGEST_SIZE} + 1 FOR {DIGEST_SIZE}) AS member "  # noqa: S608
    "FROM generate_series(0, %s) AS i"
)
_COPY_MEMBERS = f"COPY {MEMBERS} (ad_account_id, list_key, member) FROM STDIN (FORMAT BINARY)"
# PostgreSQL's binary COPY format: a signature, flags and extension length; then per row the
# field count and each field as length + bytes; then -1. Written whole, since psycopg's
# write_row costs a Python call per member (7 s of the target's CPU for 10 million).
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def _copy_rows(ad_account_id: str, list_key: str, blob: bytes) -> bytes:
    """The members of ``blob`` as binary COPY data of (ad_account_id, list_key, member) rows."""
    account, key = ad_account_id.encode(), list_key.encode()
    prefix = (
        struct.pack("!hi", 3, len(account)) + account + struct.pack("!i", len(key)) + key
        + struct.pack("!i", DIGEST_SIZE)
    )  # fmt: skip
    return b"".join((_COPY_HEADER, *[prefix + member for member in split(blob)], _COPY_TRAILER))


def _lock_key(scope: str, name: str) -> int:
    # A list's scope is its ad account: the same key as earlier versions, so an older and a
    # newer run on one list still exclude each other.
    digest = hashlib.sha256(f"target-pinterest-audiences\0{scope}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _LockSession:
    """The one database session that holds this process's advisory locks.

    Thread-safe. Advisory locks are re-entrant within a session, so two threads of one process
    must never ask for the same key at once: `Ledger.lock` excludes them in the process first.
    The session opens with the first lock and closes once no lock is held.
    """

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._mutex = threading.Lock()
        self._conn: Connection | None = None
        self._held = 0

    def try_lock(self, key: int) -> bool:
        with self._mutex:
            if self._conn is None:
                self._conn = self._connect()
            try:
                got = bool(
                    self._conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}
                    ).scalar()
                )
            except BaseException:
                self._drop()
                raise
            self._held += got
            if not self._held:
                self._drop(close=True)
            return got

    def unlock(self, key: int) -> None:
        with self._mutex:
            self._held -= 1
            if self._conn is None:
                return  # the session died: the server released its locks already
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception:
                self._drop()  # closing the session releases the advisory locks anyway
                return
            if not self._held:
                self._drop(close=True)

    def _drop(self, *, close: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not close:
                conn.invalidate()
            conn.close()
