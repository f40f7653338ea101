"""The result of a mirror diff: counts, and the members to add and to remove, page by page.

A back end computes the diff; :class:`MembershipDiff` is what callers hold, whatever the way
it was computed. Today both back ends materialise the two sides in per-run temporary tables
(:class:`StagedDiff`); another :class:`DiffPages` (say, a merge of two sorted streams) can
replace that without touching callers.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE
from target_pinterest_audiences.ledger.errors import LedgerError

log = logging.getLogger(__name__)

Side = Literal["adds", "removes"]


class DiffPages(Protocol):
    """What a back end's diff hands to :class:`MembershipDiff`."""

    def pages(self, side: Side, chunk: int) -> Iterator[bytes]:
        """The members of one side, ascending, in blobs of at most ``chunk`` digests."""
        ...

    def close(self) -> None: ...


class MembershipDiff:
    """Result of :meth:`Ledger.diff`: counts plus streamed, sorted adds and removes.

    Both sides are fixed when the diff is made, so confirming members while iterating does not
    disturb the iteration. Call :meth:`close` (or use it as a context manager) to drop the
    staging data.
    """

    def __init__(
        self,
        *,
        desired_count: int,
        known_count: int,
        add_count: int,
        remove_count: int,
        pages: DiffPages | None,
    ) -> None:
        self.desired_count = desired_count
        self.known_count = known_count
        self.add_count = add_count
        self.remove_count = remove_count
        self._pages = pages

    def adds(self, chunk: int) -> Iterator[bytes]:
        """Members to add to Pinterest, ascending, in blobs of at most ``chunk`` digests."""
        return self._side("adds", chunk, self.add_count)

    def removes(self, chunk: int) -> Iterator[bytes]:
        """Members to remove from Pinterest, ascending, in blobs of at most ``chunk`` digests."""
        return self._side("removes", chunk, self.remove_count)

    def _side(self, side: Side, chunk: int, total: int) -> Iterator[bytes]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        if total == 0:
            return
        if self._pages is None:
            raise LedgerError("this membership diff is closed")
        yield from self._pages.pages(side, chunk)

    def close(self) -> None:
        """Drop the staging data and release the database connection (idempotent)."""
        pages, self._pages = self._pages, None
        if pages is not None:
            pages.close()

    def __enter__(self) -> MembershipDiff:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (
            f"MembershipDiff(desired_count={self.desired_count}, known_count={self.known_count}, "
            f"add_count={self.add_count}, remove_count={self.remove_count})"
        )


@dataclass(frozen=True)
class StageTables:
    """Names of one diff's temporary tables (random per run: two runs never collide)."""

    raw: str
    desired: str
    adds: str
    removes: str

    @classmethod
    def fresh(cls) -> StageTables:
        run = secrets.token_hex(6)
        return cls(*(f"tpa_stage_{run}_{part}" for part in ("raw", "desired", "adds", "removes")))

    def all(self) -> tuple[str, ...]:
        return (self.raw, self.desired, self.adds, self.removes)


class StagedDiff:
    """The two sides of a diff in temporary tables of one database session.

    ``CREATE TEMP TABLE`` is private to the session and dropped with it, so a killed run
    leaves no staging data behind.
    """

    def __init__(
        self,
        conn: Connection,
        tables: StageTables,
        *,
        end_session: Callable[[Connection], None],
        failure: Callable[[str, BaseException], LedgerError],
        driver_errors: tuple[type[Exception], ...],
    ) -> None:
        self.conn: Connection | None = conn
        self.tables = tables
        self._end_session = end_session
        self._failure = failure
        self._errors: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError, *driver_errors)

    def pages(self, side: Side, chunk: int) -> Iterator[bytes]:
        table = self.tables.adds if side == "adds" else self.tables.removes
        # Keyset pagination over the primary key. The LIMIT is a literal (and on PostgreSQL
        # plan_cache_mode=force_custom_plan is set on this session) so the planner always sees
        # "few rows after X" and walks the index instead of sorting the table for every page.
        n = int(chunk)
        first = sa.text(f"SELECT member FROM {table} ORDER BY member LIMIT {n}")  # noqa: S608
        nxt = sa.text(
            f"SELECT member FROM {table} WHERE member > :after ORDER BY member LIMIT {n}"  # noqa: S608
        )
        after: bytes | None = None
        while True:
            conn = self.conn
            if conn is None:
                raise LedgerError("this membership diff was closed while iterating")
            try:
                if after is None:
                    rows = conn.execute(first).all()
                else:
                    rows = conn.execute(nxt, {"after": after}).all()
                # End the (read) transaction between pages: the caller talks to Pinterest now,
                # and an open snapshot would hold back SQLite checkpoints / PostgreSQL vacuum.
                conn.commit()
            except self._errors as exc:
                raise self._failure(f"reading the members to {side[:-1]}", exc) from None
            if not rows:
                return
            page = b"".join([bytes(r[0]) for r in rows])
            after = page[-DIGEST_SIZE:]
            yield page
            if len(rows) < chunk:
                return

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(Exception):
                conn.rollback()
            for table in self.tables.all():
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
            self._end_session(conn)
            conn.commit()
            conn.close()
        except Exception:
            # Best effort (say, the database went away): temp tables die with the session.
            log.debug("could not drop staging tables", exc_info=True)
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()
