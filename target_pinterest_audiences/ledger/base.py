"""The ledger's interface, and everything both back ends share.

One ledger row is ``(ad_account_id, list_key, member)`` with a primary key on all three
columns. A member enters the ledger only after Pinterest accepted its ADD
(:meth:`Ledger.confirm_added`) and leaves only after Pinterest accepted its REMOVE
(:meth:`Ledger.confirm_removed`); each confirmation is its own transaction and is idempotent,
so a run killed at any moment leaves a ledger that the next run completes.

A back end (``sqlite.py``, ``postgres.py``) supplies the engine, its tables' DDL, its locks,
the read of one partition of a list's members (for a diff) and the bulk insert/delete of
members; the SQL that reads the same on both lives here.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE, as_blob
from target_pinterest_audiences.ledger.diff import MembershipDiff, Partitioned, merge, partitions
from target_pinterest_audiences.ledger.errors import LedgerBusy, LedgerError, error_detail
from target_pinterest_audiences.ledger.history import LedgerHistory
from target_pinterest_audiences.ledger.schema import (
    CREATES,
    MEMBERS,
    UPLOADS,
    Schema,
    ensure_schema,
)
from target_pinterest_audiences.ledger.tokens import LedgerTokenStore
from target_pinterest_audiences.ledger.url import SETTING, describe_url

CONFIRM_BYTES = 50_000 * DIGEST_SIZE  # members per statement, at most

_REPAIRED = (
    "Nothing is lost: the ledger records only what Pinterest accepted, and the next run "
    "re-sends whatever was not confirmed."
)


class Ledger(ABC):
    """Remembers which member digests each Pinterest customer list holds."""

    #: Poll interval while waiting for a lock.
    poll_seconds: float = 0.25
    #: How many confirmations of one list may be written at once, each in its own transaction
    #: (they never touch the same member). SQLite has one writer at a time.
    concurrent_writes: int = 1

    def __init__(self, url: URL, *, driver_errors: tuple[type[Exception], ...]) -> None:
        self._url = url
        # Errors the DBAPI raises on calls made on the raw driver connection (bulk paths).
        self._db_errors: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError, *driver_errors)
        self._engine: Engine | None = None
        self._ready = False
        self._ready_lock = threading.Lock()
        self._local_guard = threading.Lock()
        self._local_locks: dict[tuple[str, str], threading.Lock] = {}

    # ---- what a back end provides ---------------------------------------------------

    @abstractmethod
    def _create_engine(self) -> Engine: ...

    @abstractmethod
    def _schema(self) -> Schema: ...

    @abstractmethod
    def _lock_schema(self, conn: Connection) -> None:
        """Serialise schema creation between processes, inside the write transaction."""

    @abstractmethod
    def _opened(self) -> None:
        """Called once the schema is ready."""

    def _write_options(self) -> dict[str, Any]:
        """Execution options of a write transaction (SQLite: ``BEGIN IMMEDIATE``)."""
        return {}

    @abstractmethod
    def _hold(
        self, scope: str, name: str, *, wait_seconds: float, busy: Callable[[str], str]
    ) -> AbstractContextManager[None]:
        """Hold the exclusive lock ``(scope, name)`` across processes and machines.

        Raise :class:`LedgerBusy` with ``busy(detail)`` once ``wait_seconds`` have passed.
        """

    @abstractmethod
    def _known_partition(
        self, conn: Connection, ad_account_id: str, list_key: str, first: int
    ) -> bytes:
        """The list's members whose digest starts with the byte ``first``, as one blob."""

    @abstractmethod
    def _insert_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        """Insert the members of ``blob`` (any order; those already there are left alone)."""

    @abstractmethod
    def _delete_members(
        self, conn: Connection, ad_account_id: str, list_key: str, blob: bytes
    ) -> None:
        """Delete the members of ``blob`` (those not there are no error)."""

    # ---- setup and errors -----------------------------------------------------------

    def open(self) -> None:
        """Open (create, migrate) the database now, not at first use: a run checks it first."""
        self._ensure()

    def describe(self) -> str:
        """The ledger's URL with the password hidden, for messages."""
        return describe_url(self._url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no message may show: the password of its URL, if any."""
        return (str(self._url.password),) if self._url.password else ()

    def _message(self, text: str, *, hide: Iterable[str] = ()) -> str:
        for secret in (self._url.password, *hide):
            if secret:
                text = text.replace(str(secret), "***")
        return text

    def _error(self, what: str, exc: BaseException) -> LedgerError:
        """A failure to open the ledger."""
        detail = error_detail(exc)
        return LedgerError(self._message(f"{SETTING} {self.describe()!r}: {what}: {detail}"))

    def _failure(
        self, what: str, exc: BaseException, *, hide: Iterable[str] = (), members: bool = True
    ) -> LedgerError:
        """A failure of an open ledger (say, the database went away mid-run).

        ``members``: the call was about the membership, so say that nothing of it is lost.
        """
        text = f"{SETTING} {self.describe()!r}: {what} failed ({error_detail(exc)})."
        return LedgerError(self._message(f"{text} {_REPAIRED}" if members else text, hide=hide))

    def _execute(self, what: str, sql: str, params: Mapping[str, Any]) -> None:
        """One statement in its own write transaction (not about membership: a failure says
        ``what`` failed, nothing more)."""
        with self._translated(what, members=False), self._write() as conn:
            conn.execute(sa.text(sql), params)

    @contextmanager
    def _translated(
        self, what: str, *, hide: Iterable[str] = (), members: bool = True
    ) -> Iterator[None]:
        """Turn the database's errors inside the block into a :class:`LedgerError`."""
        try:
            yield
        except self._db_errors as exc:
            raise self._failure(what, exc, hide=hide, members=members) from None

    def _ensure(self) -> Engine:
        if self._ready and self._engine is not None:
            return self._engine
        with self._ready_lock:
            if self._ready and self._engine is not None:
                return self._engine
            try:
                engine = self._engine or self._create_engine()
                self._engine = engine
                with self._write(engine) as conn:
                    self._lock_schema(conn)
                    ensure_schema(conn, self._schema(), self.describe())
            except LedgerError:
                raise
            except Exception as exc:
                raise self._error("cannot open the ledger database", exc) from None
            self._opened()
            self._ready = True
            return engine

    @contextmanager
    def _write(self, engine: Engine | None = None) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        eng = (engine or self._ensure()).execution_options(**self._write_options())
        with eng.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._ensure().connect() as conn:
            yield conn
            conn.rollback()

    def close(self) -> None:
        engine, self._engine = self._engine, None
        self._ready = False
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- locking --------------------------------------------------------------------

    def lock(
        self, ad_account_id: str, list_key: str, *, wait_seconds: float = 30
    ) -> AbstractContextManager[None]:
        """Hold the exclusive lock of one customer list (across processes and machines)."""

        def busy(detail: str) -> str:
            return (
                f"another run of target-pinterest-audiences is syncing list {list_key} of ad "
                f"account {ad_account_id} (waited {wait_seconds:g}s{detail}); wait for it to "
                "finish and run again, or point the runs at different lists"
            )

        return self._exclusive(ad_account_id, list_key, wait_seconds=wait_seconds, busy=busy)

    @contextmanager
    def _exclusive(
        self, scope: str, name: str, *, wait_seconds: float, busy: Callable[[str], str]
    ) -> Iterator[None]:
        """`_hold`, after the threads of this process that want the same lock: streams syncing
        side by side may lock one list (by name and by id), and a back end's lock may be
        re-entrant within the process (PostgreSQL's advisory locks are, per session)."""
        with self._local_guard:
            local = self._local_locks.setdefault((scope, name), threading.Lock())
        if not local.acquire(timeout=max(0.0, wait_seconds)):
            raise LedgerBusy(busy("; another stream of this run holds it"))
        try:
            with self._hold(scope, name, wait_seconds=wait_seconds, busy=busy):
                yield
        finally:
            local.release()

    # ---- members --------------------------------------------------------------------

    def count(self, ad_account_id: str, list_key: str) -> int:
        """How many members the ledger holds for the list."""
        with self._translated("counting the ledger's members"), self._read() as conn:
            return _scalar(conn, _KNOWN_COUNT, {"a": ad_account_id, "l": list_key})

    def diff(
        self, ad_account_id: str, list_key: str | None, desired: Iterable[bytes] | Partitioned
    ) -> MembershipDiff:
        """Compare the complete desired membership with the ledger.

        ``desired``: the reader's members as :class:`Partitioned` blobs (streamed, tens of
        millions of members), or any blobs (``k * 32`` bytes) in any order, duplicates allowed
        (grouped in memory first). ``list_key`` ``None`` is a list not yet created: nothing
        known, every desired member is an add. One read transaction: a consistent snapshot.
        """
        engine = self._ensure()
        with self._translated("computing the mirror diff"), engine.connect() as conn:

            def known_of(first: int) -> bytes:
                if list_key is None:
                    return b""
                return self._known_partition(conn, ad_account_id, list_key, first)

            diff = merge(partitions(desired), known_of)
            conn.rollback()
        return diff

    def confirm_added(self, ad_account_id: str, list_key: str, digests: bytes) -> None:
        """Record members whose ADD Pinterest accepted (a blob; idempotent, one transaction)."""
        blob = as_blob(digests)
        if not blob:
            return
        with self._translated("recording members Pinterest accepted"), self._write() as conn:
            for start in range(0, len(blob), CONFIRM_BYTES):
                self._insert_members(
                    conn, ad_account_id, list_key, blob[start : start + CONFIRM_BYTES]
                )

    def confirm_removed(self, ad_account_id: str, list_key: str, digests: bytes) -> None:
        """Forget members whose REMOVE Pinterest accepted (a blob; idempotent, one transaction)."""
        blob = as_blob(digests)
        if not blob:
            return
        with self._translated("forgetting members Pinterest removed"), self._write() as conn:
            for start in range(0, len(blob), CONFIRM_BYTES):
                self._delete_members(
                    conn, ad_account_id, list_key, blob[start : start + CONFIRM_BYTES]
                )

    # ---- what the ledger can account for ----------------------------------------------

    def upload_tally(self, ad_account_id: str, list_key: str) -> UploadTally:
        """What the ledger knows of the records uploaded to the list (schema.py, version 3)."""
        with self._translated("reading the upload tally", members=False), self._read() as conn:
            row = conn.execute(
                sa.text(
                    f"SELECT accounted, uploaded, warned FROM {UPLOADS} "  # noqa: S608
                    "WHERE ad_account_id = :a AND list_key = :l"
                ),
                {"a": ad_account_id, "l": list_key},
            ).first()
        if row is None:
            return UploadTally(accounted=0, legacy_net=None, warned=0, recorded=False)
        accounted, legacy, warned = row
        return UploadTally(
            accounted=None if accounted is None else int(accounted),
            legacy_net=None if legacy is None else int(legacy),
            warned=int(warned or 0),
            recorded=True,
        )

    def note_accounted(self, ad_account_id: str, list_key: str, count: int) -> None:
        """Add ``count`` records to what the target accounts for of the list's uploads.

        Its own small transaction. The sync layer notes an ADD call's records before the call
        is sent (and again before a call that may have been applied is sent again), so that
        the tally errs towards more than Pinterest's counter shows, never towards a warning
        about records the target sent itself.
        """
        if count == 0:
            return
        self._execute(
            "noting uploaded records",
            f"INSERT INTO {UPLOADS} (ad_account_id, list_key, accounted) "  # noqa: S608
            "VALUES (:a, :l, :n) ON CONFLICT (ad_account_id, list_key) DO UPDATE "
            f"SET accounted = COALESCE({UPLOADS}.accounted, 0) + excluded.accounted",
            {"a": ad_account_id, "l": list_key, "n": int(count)},
        )

    def settle_accounted(self, ad_account_id: str, list_key: str, accounted: int) -> None:
        """Set the tally of a list recorded before version 3 (left alone once it is set)."""
        self._execute(
            "noting uploaded records",
            f"UPDATE {UPLOADS} SET accounted = :n "  # noqa: S608
            "WHERE ad_account_id = :a AND list_key = :l AND accounted IS NULL",
            {"a": ad_account_id, "l": list_key, "n": int(accounted)},
        )

    def note_warned(self, ad_account_id: str, list_key: str, records: int) -> None:
        """The uploads from elsewhere that the latest mirror warning named (0: none)."""
        self._execute(
            "noting a warning",
            f"INSERT INTO {UPLOADS} (ad_account_id, list_key, accounted, warned) "  # noqa: S608
            "VALUES (:a, :l, 0, :w) ON CONFLICT (ad_account_id, list_key) DO UPDATE "
            "SET warned = excluded.warned",
            {"a": ad_account_id, "l": list_key, "w": int(records)},
        )

    def take_as_handled(self, ad_account_id: str, list_key: str, records: int) -> None:
        """The user removed the members a warning was about: its ``records`` are accounted
        for from now on, and no warning is pending."""
        self._execute(
            "noting uploaded records",
            f"UPDATE {UPLOADS} SET warned = 0, "  # noqa: S608
            "accounted = COALESCE(accounted, 0) + :n "
            "WHERE ad_account_id = :a AND list_key = :l",
            {"a": ad_account_id, "l": list_key, "n": int(records)},
        )

    # ---- what runs created ------------------------------------------------------------

    def note_creating(self, ad_account_id: str, kind: str, key: str) -> None:
        """A create of ``kind`` (``list``, ``audience``, ``lookalike``) known by ``key`` is
        about to be sent: until `note_created`, a run that finds it pending must read Pinterest
        (the create may have landed before its sender died)."""
        self._note_create(ad_account_id, kind, key, None)

    def note_created(self, ad_account_id: str, kind: str, key: str, object_id: str | None) -> None:
        """The create landed as ``object_id`` (None: it was refused; nothing is pending)."""
        if object_id is None:
            self._execute(
                "noting a create",
                f"DELETE FROM {CREATES} WHERE ad_account_id = :a AND kind = :k "  # noqa: S608
                "AND key = :n AND object_id IS NULL",
                {"a": ad_account_id, "k": kind, "n": key},
            )
            return
        self._note_create(ad_account_id, kind, key, object_id)

    def _note_create(self, ad_account_id: str, kind: str, key: str, object_id: str | None) -> None:
        self._execute(
            "noting a create",
            f"INSERT INTO {CREATES} (ad_account_id, kind, key, object_id, noted_at) "  # noqa: S608
            "VALUES (:a, :k, :n, :o, :t) ON CONFLICT (ad_account_id, kind, key) DO UPDATE "
            "SET object_id = excluded.object_id, noted_at = excluded.noted_at",
            {"a": ad_account_id, "k": kind, "n": key, "o": object_id, "t": time.time()},
        )

    def created(self, ad_account_id: str, kind: str, key: str) -> Created | None:
        """What the runs sharing this ledger last created of ``kind`` by ``key`` (None: never)."""
        with self._translated("reading the creates", members=False), self._read() as conn:
            row = conn.execute(
                sa.text(
                    f"SELECT object_id FROM {CREATES} "  # noqa: S608
                    "WHERE ad_account_id = :a AND kind = :k AND key = :n"
                ),
                {"a": ad_account_id, "k": kind, "n": key},
            ).first()
        return None if row is None else Created(None if row[0] is None else str(row[0]))

    # ---- the run history --------------------------------------------------------------

    def history(self) -> LedgerHistory:
        """The run history kept in this database: one row per stream per run."""
        return LedgerHistory(self)

    # ---- the refresh token ------------------------------------------------------------

    def refresh_token_store(self, key: str, *, wait_seconds: float = 60) -> LedgerTokenStore:
        """The newest Pinterest refresh token of one app (``key``: its client_id), kept here.

        Its ``exclusive()`` serialises refreshes across processes and machines and waits at
        most ``wait_seconds`` for another run's refresh.
        """
        return LedgerTokenStore(self, key, wait_seconds=wait_seconds)


@dataclass(frozen=True)
class Created:
    """A create noted in the ledger: ``object_id`` None while its answer is awaited (or was
    lost with its sender)."""

    object_id: str | None

    @property
    def pending(self) -> bool:
        return self.object_id is None


@dataclass(frozen=True)
class UploadTally:
    """What the ledger holds of one list's uploads on Pinterest."""

    accounted: int | None  # records the target accounts for; None: recorded before version 3
    legacy_net: int | None  # version 2's uploads net of removals (None: version 1, or none)
    warned: int  # uploads from elsewhere the latest mirror warning named; 0: none pending
    recorded: bool  # False: the ledger never heard of the list (then accounted is 0)


_KNOWN_COUNT = f"SELECT count(*) FROM {MEMBERS} WHERE ad_account_id = :a AND list_key = :l"  # noqa: S608


def _scalar(conn: Connection, sql: str, params: dict[str, str | None] | None = None) -> int:
    return int(conn.execute(sa.text(sql), params or {}).scalar() or 0)
