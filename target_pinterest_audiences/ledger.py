"""Membership ledger for ``sync_mode=mirror``.

Pinterest cannot tell us who is in a customer list, so in mirror mode the target
remembers which member hashes Pinterest has accepted.  The ledger stores only the
hashes (``bytes``, normally 32-byte SHA-256 digests), never raw identifiers.

One ledger row is ``(ad_account_id, list_key, member)`` with a primary key on all
three columns.  A member enters the ledger only after Pinterest accepted its ADD
(:meth:`Ledger.confirm_added`) and leaves only after Pinterest accepted its REMOVE
(:meth:`Ledger.confirm_removed`); each confirmation is its own transaction and is
idempotent, so a run killed at any moment leaves a ledger that the next run completes.

:meth:`Ledger.diff` loads the complete desired membership into per-run temporary
tables (``CREATE TEMP TABLE``: private to one database session, dropped with it, so
a killed run cannot leave staging data behind and two runs never collide) and
computes ``desired EXCEPT ledger`` / ``ledger EXCEPT desired`` in SQL.  Python
memory stays flat: members are streamed in and out in chunks.

Back ends: SQLite (default; a file under ``.target-pinterest-audiences/``) and
PostgreSQL through psycopg 3 (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

__all__ = ["Ledger", "LedgerBusy", "LedgerError", "MirrorPlan"]

log = logging.getLogger(__name__)

SETTING = "ledger_url"
DEFAULT_DIR = ".target-pinterest-audiences"
DEFAULT_FILE = "ledger.sqlite"
SCHEMA_VERSION = "1"

MEMBERS = "tpa_ledger_members"
LOCKS = "tpa_ledger_locks"
META = "tpa_ledger_meta"

LOAD_CHUNK = 50_000
CONFIRM_CHUNK = 50_000

# Arbitrary constant used to serialise schema creation on PostgreSQL.
_PG_SCHEMA_LOCK_KEY = 0x7470_615F_6C65_6467  # "tpa_ledg"

_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_PGCOPY_TRAILER = struct.pack("!h", -1)


class LedgerError(Exception):
    """A ledger problem the user can act on (bad ``ledger_url``, unreachable database...)."""


class LedgerBusy(LedgerError):
    """Another run holds the lock of the same customer list."""


# --------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------


@dataclass
class MirrorPlan:
    """Result of :meth:`Ledger.diff`: counts plus streamed, sorted adds and removes.

    The adds and removes are materialised in temporary tables when the plan is made,
    so confirming members while iterating does not disturb the iteration.  Call
    :meth:`close` (or use the plan as a context manager) to drop the staging data.
    """

    desired_count: int
    known_count: int
    add_count: int
    remove_count: int
    _conn: Connection | None = field(default=None, repr=False, compare=False)
    _adds_table: str = field(default="", repr=False, compare=False)
    _removes_table: str = field(default="", repr=False, compare=False)
    _tables: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _pg: bool = field(default=False, repr=False, compare=False)

    def iter_adds(self, chunk: int) -> Iterator[list[bytes]]:
        """Members to add to Pinterest, ascending, ``chunk`` at a time."""
        return self._iter(self._adds_table, chunk, self.add_count)

    def iter_removes(self, chunk: int) -> Iterator[list[bytes]]:
        """Members to remove from Pinterest, ascending, ``chunk`` at a time."""
        return self._iter(self._removes_table, chunk, self.remove_count)

    def _iter(self, table: str, chunk: int, total: int) -> Iterator[list[bytes]]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        if total == 0:
            return
        if self._conn is None:
            raise LedgerError("this mirror plan is closed")
        conn = self._conn
        # Keyset pagination over the primary key.  The LIMIT is a literal (and on
        # PostgreSQL plan_cache_mode=force_custom_plan is set on this session) so the
        # planner always sees "few rows after X" and walks the index instead of
        # scanning and sorting the whole table for every page.
        n = int(chunk)
        first = sa.text(f"SELECT member FROM {table} ORDER BY member LIMIT {n}")  # noqa: S608
        nxt = sa.text(
            f"SELECT member FROM {table} WHERE member > :after ORDER BY member LIMIT {n}"  # noqa: S608
        )
        after: bytes | None = None
        while True:
            if self._conn is None:
                raise LedgerError("this mirror plan was closed while iterating")
            if after is None:
                rows = conn.execute(first).all()
            else:
                rows = conn.execute(nxt, {"after": after}).all()
            # End the (read) transaction between pages: the caller talks to Pinterest
            # now, and an open snapshot would hold back SQLite checkpoints / PG vacuum.
            conn.commit()
            if not rows:
                return
            page = [bytes(r[0]) for r in rows]
            after = page[-1]
            yield page
            if len(page) < chunk:
                return

    def close(self) -> None:
        """Drop the staging tables and release the database connection."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(Exception):
                conn.rollback()
            for t in self._tables:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")
            conn.commit()
            if self._pg:
                conn.exec_driver_sql("RESET plan_cache_mode")
                conn.commit()
            else:
                # Give the staging page cache back before the connection returns to the pool.
                conn.exec_driver_sql("PRAGMA temp.cache_size=-2000")
                conn.exec_driver_sql("PRAGMA shrink_memory")
                conn.commit()
            conn.close()
        except Exception:  # pragma: no cover - best effort; temp tables die with the session
            log.debug("could not drop staging tables", exc_info=True)
            with contextlib.suppress(Exception):
                conn.invalidate()

    def __enter__(self) -> MirrorPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.close()


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _as_bytes(m: object) -> bytes:
    if type(m) is bytes:
        return m
    if isinstance(m, bytes | bytearray | memoryview):
        return bytes(m)
    raise TypeError(f"ledger members must be bytes (hash digests), got {type(m).__name__}")


def _chunks(items: Iterable[object], size: int) -> Iterator[list[bytes]]:
    it = iter(items)
    while True:
        block = list(itertools.islice(it, size))
        if not block:
            return
        yield [m if type(m) is bytes else _as_bytes(m) for m in block]


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


def _pg_lock_key(ad_account_id: str, list_key: str) -> int:
    digest = hashlib.sha256(
        f"target-pinterest-audiences\0{ad_account_id}\0{list_key}".encode()
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _busy_message(ad_account_id: str, list_key: str, waited: float, detail: str) -> str:
    return (
        f"another run of target-pinterest-audiences is syncing list {list_key} of ad account "
        f"{ad_account_id} (waited {waited:g}s{detail}); wait for it to finish and run again, "
        "or point the runs at different lists"
    )


# --------------------------------------------------------------------------------------
# Ledger
# --------------------------------------------------------------------------------------


class Ledger:
    """Remembers which member hashes each Pinterest customer list holds."""

    #: SQLite lock rows are refreshed this often by a background thread ...
    heartbeat_seconds: float = 15.0
    #: ... and a lock row whose heartbeat is older than this is considered abandoned.
    stale_after_seconds: float = 300.0
    #: Poll interval while waiting for a lock.
    poll_seconds: float = 0.25
    #: SQLite page cache per connection, and for the staging tables of a diff (KiB).
    sqlite_cache_kib: int = 16384
    sqlite_stage_cache_kib: int = 32768

    def __init__(self, url: str | None, *, base_dir: Path | None = None) -> None:
        base = Path.cwd() if base_dir is None else Path(base_dir)
        self._default_file: Path | None = None
        if url is None:
            self._default_file = base / DEFAULT_DIR / DEFAULT_FILE
            self._url: URL = URL.create("sqlite", database=str(self._default_file))
        else:
            self._url = self._parse_url(url, base)
        self._pg = self._url.get_backend_name() == "postgresql"
        self._engine: Engine | None = None
        self._ready = False
        self._ready_lock = threading.Lock()
        self._host = socket.gethostname()

    # ---- setup ---------------------------------------------------------------------

    @staticmethod
    def _parse_url(raw: str, base: Path) -> URL:
        try:
            url = make_url(raw)
        except Exception:
            raise LedgerError(
                f"{SETTING} is not a valid database URL; expected e.g. "
                "'sqlite:////path/to/ledger.sqlite' or "
                "'postgresql+psycopg://user:password@host:5432/dbname'"
            ) from None
        backend = url.get_backend_name()
        if backend in ("postgresql", "postgres"):
            if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
                raise LedgerError(
                    f"{SETTING} {url.render_as_string(hide_password=True)!r}: only the "
                    "psycopg (version 3) driver is supported; use 'postgresql+psycopg://...'"
                )
            url = url.set(drivername="postgresql+psycopg")
        elif backend == "sqlite":
            db = url.database
            if not db or db == ":memory:" or db.startswith("file:"):
                raise LedgerError(
                    f"{SETTING} {url.render_as_string(hide_password=True)!r}: the ledger must "
                    "be a database file (e.g. 'sqlite:////path/to/ledger.sqlite'), not an "
                    "in-memory database"
                )
            path = Path(db)
            if not path.is_absolute():
                path = base / path
            url = url.set(drivername="sqlite", database=str(path))
        else:
            raise LedgerError(
                f"{SETTING} {url.render_as_string(hide_password=True)!r}: unsupported "
                f"database {backend!r}; use sqlite:///... or postgresql+psycopg://..."
            )
        return url

    def _safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    def _scrub(self, text: str) -> str:
        pw = self._url.password
        if pw:
            text = text.replace(str(pw), "***")
        return text

    def _error(self, what: str, exc: BaseException) -> LedgerError:
        orig = getattr(exc, "orig", None) or exc
        detail = " ".join(str(orig).split()) or type(orig).__name__
        return LedgerError(self._scrub(f"{SETTING} {self._safe_url()!r}: {what}: {detail}"))

    def _make_engine(self) -> Engine:
        if self._pg:
            engine = sa.create_engine(self._url, pool_pre_ping=True, pool_use_lifo=True)
        else:
            assert self._url.database
            path = Path(self._url.database)
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self._default_file is not None:
                os.chmod(path.parent, 0o700)
            engine = sa.create_engine(
                self._url,
                pool_use_lifo=True,
                connect_args={"timeout": 60.0, "check_same_thread": False},
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                    cur.execute("PRAGMA journal_size_limit=67108864")
                    cur.execute(f"PRAGMA cache_size=-{self.sqlite_cache_kib}")
                    cur.execute("PRAGMA temp_store=FILE")
                finally:
                    cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Connection) -> None:
                immediate = conn.get_execution_options().get("tpa_immediate")
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _ensure(self) -> Engine:
        if self._ready and self._engine is not None:
            return self._engine
        with self._ready_lock:
            if self._ready and self._engine is not None:
                return self._engine
            try:
                engine = self._engine or self._make_engine()
                self._engine = engine
                self._create_schema(engine)
            except LedgerError:
                raise
            except Exception as exc:
                raise self._error("cannot open the ledger database", exc) from None
            if self._default_file is not None:
                with contextlib.suppress(OSError):
                    os.chmod(self._default_file, 0o600)
            self._ready = True
            return engine

    def _create_schema(self, engine: Engine) -> None:
        if self._pg:
            ddl = [
                f"CREATE TABLE IF NOT EXISTS {MEMBERS} (ad_account_id text NOT NULL, "
                "list_key text NOT NULL, member bytea NOT NULL, "
                "PRIMARY KEY (ad_account_id, list_key, member))",
                f"CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL)",
            ]
        else:
            ddl = [
                f"CREATE TABLE IF NOT EXISTS {MEMBERS} (ad_account_id TEXT NOT NULL, "
                "list_key TEXT NOT NULL, member BLOB NOT NULL, "
                "PRIMARY KEY (ad_account_id, list_key, member)) WITHOUT ROWID",
                f"CREATE TABLE IF NOT EXISTS {LOCKS} (ad_account_id TEXT NOT NULL, "
                "list_key TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL, "
                "pid INTEGER NOT NULL, acquired_at REAL NOT NULL, heartbeat_at REAL NOT NULL, "
                "PRIMARY KEY (ad_account_id, list_key))",
                f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ]
        with self._write(engine) as conn:
            if self._pg:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_SCHEMA_LOCK_KEY})")
            for stmt in ddl:
                conn.exec_driver_sql(stmt)
            row = conn.execute(
                sa.text(f"SELECT value FROM {META} WHERE key = 'schema_version'")  # noqa: S608
            ).first()
            if row is None:
                conn.execute(
                    sa.text(f"INSERT INTO {META} (key, value) VALUES ('schema_version', :v)"),  # noqa: S608
                    {"v": SCHEMA_VERSION},
                )
            elif row[0] != SCHEMA_VERSION:
                raise LedgerError(
                    f"{SETTING} {self._safe_url()!r}: the ledger has schema version {row[0]}, "
                    f"this version of target-pinterest-audiences needs {SCHEMA_VERSION}"
                )

    @contextmanager
    def _write(self, engine: Engine | None = None) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        eng = engine or self._ensure()
        if not self._pg:
            eng = eng.execution_options(tpa_immediate=True)
        with eng.begin() as conn:
            yield conn

    def close(self) -> None:
        engine, self._engine = self._engine, None
        self._ready = False
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- locking -------------------------------------------------------------------

    @contextmanager
    def lock(
        self, ad_account_id: str, list_key: str, *, wait_seconds: float = 30
    ) -> Iterator[None]:
        """Hold the exclusive lock of one customer list (across processes and machines)."""
        if self._pg:
            with self._pg_lock(ad_account_id, list_key, wait_seconds):
                yield
        else:
            with self._sqlite_lock(ad_account_id, list_key, wait_seconds):
                yield

    @contextmanager
    def _pg_lock(self, ad_account_id: str, list_key: str, wait_seconds: float) -> Iterator[None]:
        engine = self._ensure()
        key = _pg_lock_key(ad_account_id, list_key)
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:
            raise self._error("cannot connect to the ledger database", exc) from None
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                if got:
                    break
                if time.monotonic() >= deadline:
                    raise LedgerBusy(
                        _busy_message(
                            ad_account_id,
                            list_key,
                            wait_seconds,
                            "; the lock is released as soon as that run's database session ends",
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

    @contextmanager
    def _sqlite_lock(
        self, ad_account_id: str, list_key: str, wait_seconds: float
    ) -> Iterator[None]:
        self._ensure()
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + wait_seconds
        while True:
            holder = self._sqlite_try_lock(ad_account_id, list_key, owner)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                host, pid, acquired = holder
                since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(acquired))
                raise LedgerBusy(
                    _busy_message(
                        ad_account_id,
                        list_key,
                        wait_seconds,
                        f"; held by pid {pid} on host {host} since {since}; a lock whose "
                        f"holder died is taken over automatically (same host: at once; "
                        f"other hosts: after {self.stale_after_seconds:g}s without heartbeat)",
                    )
                )
            time.sleep(self.poll_seconds)

        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(ad_account_id, list_key, owner, stop),
            name=f"tpa-ledger-heartbeat-{list_key}",
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
                        {"a": ad_account_id, "l": list_key, "o": owner},
                    )
            except Exception:  # pragma: no cover
                log.warning("could not release the ledger lock of list %s", list_key, exc_info=True)

    def _sqlite_try_lock(
        self, ad_account_id: str, list_key: str, owner: str
    ) -> tuple[str, int, float] | None:
        """Take the lock row; return None on success or (host, pid, acquired_at) of the holder."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                sa.text(
                    f"SELECT host, pid, acquired_at, heartbeat_at FROM {LOCKS} "  # noqa: S608
                    "WHERE ad_account_id = :a AND list_key = :l"
                ),
                {"a": ad_account_id, "l": list_key},
            ).first()
            if row is not None:
                host, pid, acquired_at, heartbeat_at = row
                dead = host == self._host and not _pid_alive(int(pid))
                stale = now - float(heartbeat_at) > self.stale_after_seconds
                if not (dead or stale):
                    return (str(host), int(pid), float(acquired_at))
                log.warning(
                    "taking over the ledger lock of list %s of ad account %s from pid %s on %s "
                    "(%s)",
                    list_key,
                    ad_account_id,
                    pid,
                    host,
                    "process is gone" if dead else "no heartbeat",
                )
                conn.execute(
                    sa.text(f"DELETE FROM {LOCKS} WHERE ad_account_id = :a AND list_key = :l"),  # noqa: S608
                    {"a": ad_account_id, "l": list_key},
                )
            conn.execute(
                sa.text(
                    f"INSERT INTO {LOCKS} (ad_account_id, list_key, owner, host, pid, "  # noqa: S608
                    "acquired_at, heartbeat_at) VALUES (:a, :l, :o, :h, :p, :t, :t)"
                ),
                {
                    "a": ad_account_id,
                    "l": list_key,
                    "o": owner,
                    "h": self._host,
                    "p": os.getpid(),
                    "t": now,
                },
            )
        return None

    def _heartbeat(
        self, ad_account_id: str, list_key: str, owner: str, stop: threading.Event
    ) -> None:
        while not stop.wait(self.heartbeat_seconds):
            try:
                with self._write() as conn:
                    res = conn.execute(
                        sa.text(
                            f"UPDATE {LOCKS} SET heartbeat_at = :t WHERE ad_account_id = :a "  # noqa: S608
                            "AND list_key = :l AND owner = :o"
                        ),
                        {"t": time.time(), "a": ad_account_id, "l": list_key, "o": owner},
                    )
                    if res.rowcount == 0:
                        log.warning("the ledger lock of list %s was taken over", list_key)
                        return
            except Exception:  # pragma: no cover
                log.warning("ledger lock heartbeat failed", exc_info=True)

    # ---- queries -------------------------------------------------------------------

    def count(self, ad_account_id: str, list_key: str) -> int:
        engine = self._ensure()
        with engine.connect() as conn:
            n = conn.execute(
                sa.text(
                    f"SELECT count(*) FROM {MEMBERS} WHERE ad_account_id = :a AND list_key = :l"  # noqa: S608
                ),
                {"a": ad_account_id, "l": list_key},
            ).scalar()
            conn.rollback()
        return int(n or 0)

    def diff(self, ad_account_id: str, list_key: str, desired: Iterable[bytes]) -> MirrorPlan:
        """Compare the complete desired membership with the ledger.

        ``desired`` may be any iterable (unsorted, with duplicates, tens of millions of
        items); it is streamed into a temporary table in chunks.
        """
        engine = self._ensure()
        run = secrets.token_hex(6)
        t_raw, t_des = f"tpa_stage_{run}_raw", f"tpa_stage_{run}_desired"
        t_add, t_rem = f"tpa_stage_{run}_adds", f"tpa_stage_{run}_removes"
        tables = (t_raw, t_des, t_add, t_rem)
        conn = engine.connect()
        plan = MirrorPlan(
            0,
            0,
            0,
            0,
            _conn=conn,
            _adds_table=t_add,
            _removes_table=t_rem,
            _tables=tables,
            _pg=self._pg,
        )
        try:
            params = {"a": ad_account_id, "l": list_key}
            if self._pg:
                self._pg_stage(conn, desired, t_raw, t_des, t_add, t_rem, params)
            else:
                self._sqlite_stage(conn, desired, t_raw, t_des, t_add, t_rem, params)

            def scalar(sql: str, p: dict[str, str] | None = None) -> int:
                return int(conn.execute(sa.text(sql), p or {}).scalar() or 0)

            plan.desired_count = scalar(f"SELECT count(*) FROM {t_des}")  # noqa: S608
            plan.known_count = scalar(
                f"SELECT count(*) FROM {MEMBERS} WHERE ad_account_id = :a AND list_key = :l",  # noqa: S608
                params,
            )
            plan.add_count = scalar(f"SELECT count(*) FROM {t_add}")  # noqa: S608
            plan.remove_count = scalar(f"SELECT count(*) FROM {t_rem}")  # noqa: S608
            # The desired set is no longer needed: adds/removes are materialised.
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t_des}")
            conn.commit()
        except BaseException as exc:
            plan.close()
            if isinstance(exc, sa.exc.SQLAlchemyError):
                raise self._error("computing the mirror diff failed", exc) from None
            raise
        return plan

    def _sqlite_stage(
        self,
        conn: Connection,
        desired: Iterable[bytes],
        t_raw: str,
        t_des: str,
        t_add: str,
        t_rem: str,
        params: dict[str, str],
    ) -> None:
        conn.exec_driver_sql(f"PRAGMA temp.cache_size=-{self.sqlite_stage_cache_kib}")
        conn.commit()
        conn.begin()
        conn.exec_driver_sql(f"CREATE TEMP TABLE {t_raw} (member BLOB NOT NULL)")
        raw = conn.connection.driver_connection
        assert raw is not None
        ins = f"INSERT INTO temp.{t_raw} (member) VALUES (?)"  # noqa: S608
        for block in _chunks(desired, LOAD_CHUNK):
            raw.executemany(ins, [(m,) for m in block])
        # Sorting once and appending to the B-tree is much cheaper than random inserts.
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE {t_des} (member BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID"
        )
        conn.exec_driver_sql(
            f"INSERT OR IGNORE INTO temp.{t_des} (member) "  # noqa: S608
            f"SELECT member FROM temp.{t_raw} ORDER BY member"
        )
        conn.exec_driver_sql(f"DROP TABLE temp.{t_raw}")
        for t in (t_add, t_rem):
            conn.exec_driver_sql(
                f"CREATE TEMP TABLE {t} (member BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID"
            )
        conn.execute(
            sa.text(
                f"INSERT INTO temp.{t_add} (member) SELECT d.member FROM temp.{t_des} d "  # noqa: S608
                f"WHERE NOT EXISTS (SELECT 1 FROM main.{MEMBERS} m WHERE m.ad_account_id = :a "
                "AND m.list_key = :l AND m.member = d.member) ORDER BY d.member"
            ),
            params,
        )
        conn.execute(
            sa.text(
                f"INSERT INTO temp.{t_rem} (member) SELECT m.member FROM main.{MEMBERS} m "  # noqa: S608
                "WHERE m.ad_account_id = :a AND m.list_key = :l AND NOT EXISTS "
                f"(SELECT 1 FROM temp.{t_des} d WHERE d.member = m.member) ORDER BY m.member"
            ),
            params,
        )
        conn.commit()

    def _pg_stage(
        self,
        conn: Connection,
        desired: Iterable[bytes],
        t_raw: str,
        t_des: str,
        t_add: str,
        t_rem: str,
        params: dict[str, str],
    ) -> None:
        conn.begin()
        conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")  # reset in close()
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        # A bulk anti-join: never a nested loop, even when the ledger's statistics are
        # stale right after a big fill (temp tables are analyzed below).
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {t_raw} (member bytea NOT NULL)")
        raw = conn.connection.driver_connection
        assert raw is not None
        pack = struct.Struct("!hi").pack
        copy_sql = f"COPY {t_raw} (member) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(copy_sql) as cp:
            cp.write(_PGCOPY_HEADER)
            for block in _chunks(desired, LOAD_CHUNK):
                cp.write(b"".join([pack(1, len(m)) + m for m in block]))
            cp.write(_PGCOPY_TRAILER)
        conn.exec_driver_sql(f"CREATE TEMP TABLE {t_des} AS SELECT DISTINCT member FROM {t_raw}")  # noqa: S608
        conn.exec_driver_sql(f"DROP TABLE {t_raw}")
        conn.exec_driver_sql(f"ALTER TABLE {t_des} ADD PRIMARY KEY (member)")
        conn.exec_driver_sql(f"ANALYZE {t_des}")
        conn.execute(
            sa.text(
                f"CREATE TEMP TABLE {t_add} AS SELECT d.member FROM {t_des} d WHERE NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM {MEMBERS} m WHERE m.ad_account_id = :a AND m.list_key = :l "
                "AND m.member = d.member)"
            ),
            params,
        )
        conn.execute(
            sa.text(
                f"CREATE TEMP TABLE {t_rem} AS SELECT m.member FROM {MEMBERS} m "  # noqa: S608
                "WHERE m.ad_account_id = :a AND m.list_key = :l AND NOT EXISTS "
                f"(SELECT 1 FROM {t_des} d WHERE d.member = m.member)"
            ),
            params,
        )
        for t in (t_add, t_rem):
            conn.exec_driver_sql(f"ALTER TABLE {t} ADD PRIMARY KEY (member)")
            conn.exec_driver_sql(f"ANALYZE {t}")  # temp tables are never auto-analyzed
        conn.commit()

    # ---- confirmations -------------------------------------------------------------

    def confirm_added(self, ad_account_id: str, list_key: str, hashes: Sequence[bytes]) -> None:
        """Record members whose ADD Pinterest accepted (idempotent, one transaction)."""
        if not hashes:
            return
        with self._write() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            for block in _chunks(hashes, CONFIRM_CHUNK):
                block.sort()
                if self._pg:
                    with raw.cursor() as cur:
                        cur.execute(
                            f"INSERT INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
                            "SELECT %s, %s, m FROM unnest(%s::bytea[]) AS t(m) "
                            "ON CONFLICT DO NOTHING",
                            (ad_account_id, list_key, block),
                        )
                else:
                    raw.executemany(
                        f"INSERT OR IGNORE INTO {MEMBERS} (ad_account_id, list_key, member) "  # noqa: S608
                        "VALUES (?, ?, ?)",
                        [(ad_account_id, list_key, m) for m in block],
                    )

    def confirm_removed(self, ad_account_id: str, list_key: str, hashes: Sequence[bytes]) -> None:
        """Forget members whose REMOVE Pinterest accepted (idempotent, one transaction)."""
        if not hashes:
            return
        with self._write() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            for block in _chunks(hashes, CONFIRM_CHUNK):
                block.sort()
                if self._pg:
                    with raw.cursor() as cur:
                        cur.execute(
                            f"DELETE FROM {MEMBERS} WHERE ad_account_id = %s AND list_key = %s "  # noqa: S608
                            "AND member = ANY(%s::bytea[])",
                            (ad_account_id, list_key, block),
                        )
                else:
                    raw.executemany(
                        f"DELETE FROM {MEMBERS} WHERE ad_account_id = ? AND list_key = ? "  # noqa: S608
                        "AND member = ?",
                        [(ad_account_id, list_key, m) for m in block],
                    )

    def rename_list_key(self, ad_account_id: str, old: str, new: str) -> None:
        """Move the remembered members of ``old`` to ``new`` (e.g. the list was re-created).

        Refuses when ``new`` already has members, so two lists are never merged silently.
        """
        if old == new:
            return
        with self._write() as conn:
            taken = conn.execute(
                sa.text(
                    f"SELECT 1 FROM {MEMBERS} WHERE ad_account_id = :a AND list_key = :n LIMIT 1"  # noqa: S608
                ),
                {"a": ad_account_id, "n": new},
            ).first()
            if taken is not None:
                raise LedgerError(
                    f"cannot rename ledger list {old} to {new} of ad account {ad_account_id}: "
                    f"the ledger already holds members for list {new}"
                )
            conn.execute(
                sa.text(
                    f"UPDATE {MEMBERS} SET list_key = :n WHERE ad_account_id = :a "  # noqa: S608
                    "AND list_key = :o"
                ),
                {"a": ad_account_id, "n": new, "o": old},
            )
