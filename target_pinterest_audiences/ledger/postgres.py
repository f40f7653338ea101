"""PostgreSQL back end, through psycopg 3 (``postgresql+psycopg://...``).

A list's lock is a session-level advisory lock on a connection of its own: the server
releases it as soon as the holder's session ends, however the holder died. A diff streams
the desired members in with binary ``COPY`` and computes both sides as bulk anti-joins.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from target_pinterest_audiences.ledger.base import Ledger
from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE, split
from target_pinterest_audiences.ledger.diff import StageTables
from target_pinterest_audiences.ledger.errors import LedgerBusy, LedgerError
from target_pinterest_audiences.ledger.schema import (
    MEMBERS,
    META,
    REFRESH_TOKENS,
    UPLOADS,
    Schema,
)
from target_pinterest_audiences.ledger.url import SETTING

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
)

# Arbitrary constant used to serialise schema creation.
_SCHEMA_LOCK_KEY = 0x7470_615F_6C65_6467  # "tpa_ledg"

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PGCOPY_TRAILER = struct.pack("!h", -1)
# Each row of a binary COPY: one field (int16), its length (int32), the digest.
_PGCOPY_ROW = struct.pack("!hi", 1, DIGEST_SIZE)


class PostgresLedger(Ledger):
    """The ledger in a PostgreSQL database."""

    def __init__(self, url: URL) -> None:
        try:
            import psycopg
        except ImportError:
            raise LedgerError(
                f"{SETTING} {url.render_as_string(hide_password=True)!r}: PostgreSQL needs "
                "psycopg 3: pip install 'target-pinterest-audiences[postgres]'"
            ) from None
        super().__init__(url, driver_errors=(psycopg.Error,))

    def _create_engine(self) -> Engine:
        timeout = {} if "connect_timeout" in self._url.query else {"connect_timeout": 10}
        # A database that went away fails the call within seconds instead of hanging it.
        return sa.create_engine(
            self._url, pool_pre_ping=True, pool_use_lifo=True, connect_args=timeout
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
        engine = self._ensure()
        key = _lock_key(scope, name)
        with self._translated("taking a ledger lock"):
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + wait_seconds
            with self._translated("taking a ledger lock"):
                while True:
                    got = conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}
                    ).scalar()
                    if got:
                        break
                    if time.monotonic() >= deadline:
                        raise LedgerBusy(
                            busy(
                                "; the lock is released as soon as that run's database session ends"
                            )
                        )
                    time.sleep(self.poll_seconds)
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.close()
            except Exception:
                # Closing the session releases the advisory lock anyway.
                with contextlib.suppress(Exception):
                    conn.invalidate()
                    conn.close()

    # ---- diff staging -----------------------------------------------------------------

    def _stage(
        self,
        conn: Connection,
        desired: Iterator[bytes],
        tables: StageTables,
        params: dict[str, str | None],
    ) -> None:
        conn.begin()
        conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")  # reset after the diff
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        # A bulk anti-join: never a nested loop, even when the ledger's statistics are
        # stale right after a big fill (temp tables are analyzed below).
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {tables.raw} (member bytea NOT NULL)")
        raw = conn.connection.driver_connection
        assert raw is not None
        copy_sql = f"COPY {tables.raw} (member) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(copy_sql) as cp:
            cp.write(_PGCOPY_HEADER)
            for blob in desired:
                cp.write(_PGCOPY_ROW + _PGCOPY_ROW.join(split(blob)))
            cp.write(_PGCOPY_TRAILER)
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {tables.desired} AS SELECT DISTINCT member FROM {tables.raw}"  # noqa: S608
        )
        conn.exec_driver_sql(f"DROP TABLE {tables.raw}")
        conn.exec_driver_sql(f"ALTER TABLE {tables.desired} ADD PRIMARY KEY (member)")
        conn.exec_driver_sql(f"ANALYZE {tables.desired}")
        conn.execute(
            sa.text(
                f"CREATE TEMP TABLE {tables.adds} AS SELECT d.member FROM {tables.desired} d "  # noqa: S608
                f"WHERE NOT EXISTS (SELECT 1 FROM {MEMBERS} m WHERE m.ad_account_id = :a "
                "AND m.list_key = :l AND m.member = d.member)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                f"CREATE TEMP TABLE {tables.removes} AS SELECT m.member FROM {MEMBERS} m "  # noqa: S608
                "WHERE m.ad_account_id = :a AND m.list_key = :l AND NOT EXISTS "
                f"(SELECT 1 FROM {tables.desired} d WHERE d.member = m.member)"
            ),
            params,
        )
        for t in (tables.adds, tables.removes):
            conn.exec_driver_sql(f"ALTER TABLE {t} ADD PRIMARY KEY (member)")
            conn.exec_driver_sql(f"ANALYZE {t}")  # temp tables are never auto-analyzed
        conn.commit()

    def _end_staging(self, conn: Connection) -> None:
        conn.exec_driver_sql("RESET plan_cache_mode")

    # ---- confirmations ----------------------------------------------------------------

    def _insert_members(
        self, conn: Connection, ad_account_id: str, list_key: str, digests: list[bytes]
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute(
                f"INSERT INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
                "SELECT %s, %s, m FROM unnest(%s::bytea[]) AS t(m) ON CONFLICT DO NOTHING",
                (ad_account_id, list_key, digests),
            )

    def _delete_members(
        self, conn: Connection, ad_account_id: str, list_key: str, digests: list[bytes]
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute(
                f"DELETE FROM {MEMBERS} WHERE ad_account_id = %s AND list_key = %s "  # noqa: S608
                "AND member = ANY(%s::bytea[])",
                (ad_account_id, list_key, digests),
            )


def _lock_key(scope: str, name: str) -> int:
    # A list's scope is its ad account: the same key as earlier versions, so an older and a
    # newer run on one list still exclude each other.
    digest = hashlib.sha256(f"target-pinterest-audiences\0{scope}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
