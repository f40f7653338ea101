"""SQLite back end (the default: a file under ``.target-pinterest-audiences/``).

WAL journal; writes take ``BEGIN IMMEDIATE`` so that two processes never deadlock upgrading a
read lock. SQLite has no session-scoped lock, so a list's lock is a row (holder's host and
pid, refreshed by a heartbeat thread); a holder that died is taken over. A diff stages the
desired members in temporary tables, sorted once into a ``WITHOUT ROWID`` B-tree.
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
from target_pinterest_audiences.ledger.blobs import split
from target_pinterest_audiences.ledger.diff import StageTables
from target_pinterest_audiences.ledger.errors import LedgerBusy
from target_pinterest_audiences.ledger.schema import (
    LOCKS,
    MEMBERS,
    META,
    REFRESH_TOKENS,
    UPLOADS,
    Schema,
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
    others=(
        f"CREATE TABLE IF NOT EXISTS {LOCKS} (ad_account_id TEXT NOT NULL, "
        "list_key TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL, "
        "pid INTEGER NOT NULL, acquired_at REAL NOT NULL, heartbeat_at REAL NOT NULL, "
        "PRIMARY KEY (ad_account_id, list_key))",
    ),
)


class SqliteLedger(Ledger):
    """The ledger in one SQLite file."""

    #: Lock rows are refreshed this often by a background thread ...
    heartbeat_seconds: float = 15.0
    #: ... and a lock row whose heartbeat is older than this is considered abandoned.
    stale_after_seconds: float = 300.0
    #: Page cache per connection, and for the staging tables of a diff (KiB).
    cache_kib: int = 16384
    stage_cache_kib: int = 32768

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
                cur.execute("PRAGMA journal_mode=WAL")
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

    # ---- diff staging -----------------------------------------------------------------

    def _stage(
        self,
        conn: Connection,
        desired: Iterator[bytes],
        tables: StageTables,
        params: dict[str, str | None],
    ) -> None:
        conn.exec_driver_sql(f"PRAGMA temp.cache_size=-{self.stage_cache_kib}")
        conn.commit()
        conn.begin()
        conn.exec_driver_sql(f"CREATE TEMP TABLE {tables.raw} (member BLOB NOT NULL)")
        raw = conn.connection.driver_connection
        assert raw is not None
        ins = f"INSERT INTO temp.{tables.raw} (member) VALUES (?)"  # noqa: S608
        for blob in desired:
            raw.executemany(ins, [(m,) for m in split(blob)])
        # Sorting once and appending to the B-tree is much cheaper than random inserts.
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {tables.desired} (member BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID"
        )
        conn.exec_driver_sql(
            f"INSERT OR IGNORE INTO temp.{tables.desired} (member) "  # noqa: S608
            f"SELECT member FROM temp.{tables.raw} ORDER BY member"
        )
        conn.exec_driver_sql(f"DROP TABLE temp.{tables.raw}")
        for t in (tables.adds, tables.removes):
            conn.exec_driver_sql(
                f"CREATE TEMP TABLE {t} (member BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID"
            )
        conn.execute(
            sa.text(
                f"INSERT INTO temp.{tables.adds} (member) SELECT d.member "  # noqa: S608
                f"FROM temp.{tables.desired} d WHERE NOT EXISTS (SELECT 1 FROM main.{MEMBERS} m "
                "WHERE m.ad_account_id = :a AND m.list_key = :l AND m.member = d.member) "
                "ORDER BY d.member"
            ),
            params,
        )
        conn.execute(
            sa.text(
                f"INSERT INTO temp.{tables.removes} (member) SELECT m.member "  # noqa: S608
                f"FROM main.{MEMBERS} m WHERE m.ad_account_id = :a AND m.list_key = :l AND NOT "
                f"EXISTS (SELECT 1 FROM temp.{tables.desired} d WHERE d.member = m.member) "
                "ORDER BY m.member"
            ),
            params,
        )
        conn.commit()

    def _end_staging(self, conn: Connection) -> None:
        # Give the staging page cache back before the connection returns to the pool.
        conn.exec_driver_sql("PRAGMA temp.cache_size=-2000")
        conn.exec_driver_sql("PRAGMA shrink_memory")

    # ---- confirmations ----------------------------------------------------------------

    def _insert_members(
        self, conn: Connection, ad_account_id: str, list_key: str, digests: list[bytes]
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.executemany(
            f"INSERT OR IGNORE INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
            "VALUES (?, ?, ?)",
            [(ad_account_id, list_key, m) for m in digests],
        )

    def _delete_members(
        self, conn: Connection, ad_account_id: str, list_key: str, digests: list[bytes]
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.executemany(
            f"DELETE FROM {MEMBERS} WHERE ad_account_id = ? AND list_key = ? "  # noqa: S608
            "AND member = ?",
            [(ad_account_id, list_key, m) for m in digests],
        )


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
