"""SQLite back end (the default: a file under ``.target-pinterest-audiences/``).

WAL journal; writes take ``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a
read lock. SQLite has no session-scoped lock, so a list's lock is a row (holder's host and
pid, refreshed by a heartbeat thread); a holder that died is taken over. A diff reads a list's
members partition by partition, each as one concatenated blob.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from target_pinterest_audiences.ledger.base import Ledger
from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE
from target_pinterest_audiences.ledger.errors import LedgerBusy
from target_pinterest_audiences.ledger.schema import (
    CREATES,
    LOCKS,
    MEMBERS,
    META,
    REFRESH_TOKENS,
    UPLOADS,
    Schema,
    runs_ddl,
)
from target_pinterest_audiences.workdir import ensure_private_dir

log = logging.getLogger(__name__)

SCHEMA = Schema(
    meta=f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    members=f"CREATE TABLE IF NOT EXISTS {MEMBERS} (ad_account_id TEXT NOT NULL, "
    "list_key TEXT NOT NULL, member BLOB NOT NULL, "
    "PRIMARY KEY (ad_account_id, list_key, member)) WITHOUT ROWID",
    uploads=f"CREATE TABLE IF NOT EXISTS {UPLOADS} (ad_account_id TEXT NOT NULL, "
    "list_key TEXT NOT NULL, uploaded INTEGER, PRIMARY KEY (ad_account_id, list_key))",
    refresh_tokens=f"CREATE TABLE IF NOT EXISTS {REFRESH_TOKENS} (key TEXT PRIMARY KEY, "
    "refresh_token TEXT NOT NULL, expires_at REAL, issued_at REAL NOT NULL, "
    "configured_sha256 TEXT NOT NULL)",
    creates=f"CREATE TABLE IF NOT EXISTS {CREATES} (ad_account_id TEXT NOT NULL, "
    "kind TEXT NOT NULL, key TEXT NOT NULL, object_id TEXT, noted_at REAL NOT NULL, "
    "PRIMARY KEY (ad_account_id, kind, key))",
    runs=runs_ddl("id INTEGER PRIMARY KEY", {"text": "TEXT", "int": "INTEGER", "real": "REAL"}),
    others=(
        f"CREATE TABLE IF NOT EXISTS {LOCKS} (ad_account_id TEXT NOT NULL, "
        "list_key TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL, "
        "pid INTEGER NOT NULL, acquired_at REAL NOT NULL, heartbeat_at REAL NOT NULL, "
        "PRIMARY KEY (ad_account_id, list_key))",
    ),
)


def _into_wal(cur: Any, wait_seconds: float = 60.0) -> None:
    """Put the database in WAL mode. Switching a file into WAL takes an exclusive lock for
    which SQLite does not call its busy handler: two runs opening a new ledger at once would
    see "database is locked" at once, so the switch is tried again for a while."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteLedger(Ledger):
    """The ledger in one SQLite file."""

    #: Lock rows are refreshed this often by a background thread ...
    heartbeat_seconds: float = 15.0
    #: ... and a lock row whose heartbeat is older than this is considered abandoned.
    stale_after_seconds: float = 300.0
    #: Page cache per connection (KiB).
    cache_kib: int = 16384

    def __init__(self, url: URL, *, private_dir: Path | None = None) -> None:
        """``private_dir``: the target's working directory, when the file is the default one."""
        super().__init__(url, driver_errors=(sqlite3.Error,))
        assert url.database
        self._path = Path(url.database)
        self._private_dir = private_dir
        self._host = socket.gethostname()

    # ---- engine and schema ------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self._private_dir is not None:
            ensure_private_dir(self._private_dir)  # owner-only, and ignored by git
        elif not self._path.parent.exists():
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._path.exists():
            # Owner-only from the start: SQLite gives its WAL and shared-memory files the
            # database file's mode.
            os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = sa.create_engine(
            self._url,
            pool_use_lifo=True,
            connect_args={"timeout": 60.0, "check_same_thread": False},
        )
        cache_kib = self.cache_kib

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            try:
                _into_wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA journal_size_limit=67108864")
                cur.execute(f"PRAGMA cache_size=-{cache_kib}")
                cur.execute("PRAGMA temp_store=FILE")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("tpa_immediate")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _schema(self) -> Schema:
        return SCHEMA

    def _lock_schema(self, conn: Connection) -> None:
        pass  # the write transaction's BEGIN IMMEDIATE already serialises it

    def _opened(self) -> None:
        if self._private_dir is not None:
            with contextlib.suppress(OSError):
                os.chmod(self._path, 0o600)

    def _write_options(self) -> dict[str, Any]:
        return {"tpa_immediate": True}

    # ---- locks: rows with a heartbeat -----------------------------------------------

    @contextmanager
    def _hold(
        self, scope: str, name: str, *, wait_seconds: float, busy: Callable[[str], str]
    ) -> Iterator[None]:
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + wait_seconds
        with self._translated("taking a ledger lock"):
            while True:
                holder = self._try_lock(scope, name, owner)
                if holder is None:
                    break
                if time.monotonic() >= deadline:
                    host, pid, acquired = holder
                    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(acquired))
                    raise LedgerBusy(
                        busy(
                            f"; held by pid {pid} on host {host} since {since}; a lock whose "
                            "holder died is taken over automatically (same host: at once; "
                            f"other hosts: after {self.stale_after_seconds:g}s without heartbeat)"
                        )
                    )
                time.sleep(self.poll_seconds)

        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(scope, name, owner, stop),
            name=f"tpa-ledger-heartbeat-{name}",
            daemon=True,
        )
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join(timeout=10)
            try:
                with self._write() as conn:
                    conn.execute(
                        sa.text(
                            f"DELETE FROM {LOCKS} WHERE ad_account_id = :a AND list_key = :l "  # noqa: S608
                            "AND owner = :o"
                        ),
                        {"a": scope, "l": name, "o": owner},
                    )
            except Exception:  # pragma: no cover
                log.warning("could not release the ledger lock of %s", name, exc_info=True)

    def _try_lock(self, scope: str, name: str, owner: str) -> tuple[str, int, float] | None:
        """Take the lock row; return None on success or (host, pid, acquired_at) of the holder."""
        now = time.time()
        key = {"a": scope, "l": name}
        with self._write() as conn:
            row = conn.execute(
                sa.text(
                    f"SELECT host, pid, acquired_at, heartbeat_at FROM {LOCKS} "  # noqa: S608
                    "WHERE ad_account_id = :a AND list_key = :l"
                ),
                key,
            ).first()
            if row is not None:
                host, pid, acquired_at, heartbeat_at = row
                dead = host == self._host and not _pid_alive(int(pid))
                stale = now - float(heartbeat_at) > self.stale_after_seconds
                if not (dead or stale):
                    return (str(host), int(pid), float(acquired_at))
                log.warning(
                    "taking over the ledger lock of %s (%s) from pid %s on %s (%s)",
                    name,
                    scope,
                    pid,
                    host,
                    "process is gone" if dead else "no heartbeat",
                )
                conn.execute(
                    sa.text(f"DELETE FROM {LOCKS} WHERE ad_account_id = :a AND list_key = :l"),  # noqa: S608
                    key,
                )
            conn.execute(
                sa.text(
                    f"INSERT INTO {LOCKS} (ad_account_id, list_key, owner, host, pid, "  # noqa: S608
                    "acquired_at, heartbeat_at) VALUES (:a, :l, :o, :h, :p, :t, :t)"
                ),
                {**key, "o": owner, "h": self._host, "p": os.getpid(), "t": now},
            )
        return None

    def _heartbeat(self, scope: str, name: str, owner: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            try:
                with self._write() as conn:
                    res = conn.execute(
                        sa.text(
                            f"UPDATE {LOCKS} SET heartbeat_at = :t WHERE ad_account_id = :a "  # noqa: S608
                            "AND list_key = :l AND owner = :o"
                        ),
                        {"t": time.time(), "a": scope, "l": name, "o": owner},
                    )
                    if res.rowcount == 0:
                        log.warning("the ledger lock of %s was taken over", name)
                        return
            except Exception:  # pragma: no cover
                log.warning("ledger lock heartbeat failed", exc_info=True)

    # ---- diff ---------------------------------------------------------------------------

    def _known_partition(
        self, conn: Connection, ad_account_id: str, list_key: str, first: int
    ) -> bytes:
        # One row per partition: group_concat joins the blobs' bytes as they are (it appends
        # by length, NULs included), and the cast keeps them bytes. A range of the primary key.
        raw = conn.connection.driver_connection
        assert raw is not None
        low, high = _partition_bounds(first)
        if high is None:
            row = raw.execute(_KNOWN_FROM, (ad_account_id, list_key, low)).fetchone()
        else:
            row = raw.execute(_KNOWN_BETWEEN, (ad_account_id, list_key, low, high)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    # ---- confirmations ----------------------------------------------------------------

    def _insert_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        # The blob is bound once and cut into members inside SQLite: no Python object and no
        # parameter binding per member (about 5x faster than executemany).
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(_INSERT_BLOB, (len(blob) // DIGEST_SIZE - 1, ad_account_id, list_key, blob))

    def _delete_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        # The blob cut inside SQLite as for inserts; the IN list drives one primary-key search
        # per member (about 1.5x faster than executemany).
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(_DELETE_BLOB, (len(blob) // DIGEST_SIZE - 1, ad_account_id, list_key, blob))


_KNOWN = (
    f"SELECT CAST(group_concat(member, x'') AS BLOB) FROM {MEMBERS} "  # noqa: S608
    "WHERE ad_account_id = ? AND list_key = ? AND member >= ?"
)
_KNOWN_FROM = _KNOWN
# cut(member): members 0..?1 of the blob ?4, each its 32 bytes, cut by a counting CTE.
_CUT_BLOB = (
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1), "  # noqa: S608
    f"cut(member) AS (SELECT substr(?4, i * {DIGEST_SIZE} + 1, {DIGEST_SIZE}) FROM n) "
)
_INSERT_BLOB = (
    f"{_CUT_BLOB}INSERT OR IGNORE INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
    "SELECT ?2, ?3, member FROM cut"
)
_DELETE_BLOB = (
    f"{_CUT_BLOB}DELETE FROM {MEMBERS} WHERE ad_account_id = ?2 AND list_key = ?3 "  # noqa: S608
    "AND member IN (SELECT member FROM cut)"
)
_KNOWN_BETWEEN = f"{_KNOWN} AND member < ?"


def _partition_bounds(first: int) -> tuple[bytes, bytes | None]:
    """The members whose first byte is ``first``: ``low <= member < high`` (no high for 255)."""
    return bytes([first]), bytes([first + 1]) if first < 255 else None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover
        return False
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True
