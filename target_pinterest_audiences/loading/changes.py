"""What a stream changes in its list, by sync mode: the strategies over the same primitives.

Explicit mode sends what the rows say: their adds and their removes. Mirror mode makes the
list equal to the stream: it diffs the stream's members against the ledger of members Pinterest
accepted before, sends the difference, and records each call in the ledger once Pinterest
accepted it. Pinterest cannot list a list's members, so the ledger is the only memory of who is
in it; a crash at any point leaves a ledger that the next run's diff completes.

The ledger is written behind the calls, by a thread of its own (two on PostgreSQL), while the
next calls go out (a database's work releases the GIL): a few confirmations may wait, never
more than `PENDING_CONFIRMATIONS` per thread, and all are written before the stream's lock is
released. A crash loses at most those, which Pinterest accepted and the next run sends again
(membership is a set); the ledger still never holds a member Pinterest did not accept.
"""

from __future__ import annotations

import contextlib
import logging
import typing as t
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from target_pinterest_audiences.errors import StreamRefused
from target_pinterest_audiences.ledger import Partitioned
from target_pinterest_audiences.loading.report import MirrorFigures

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.ledger import Ledger, MembershipDiff
    from target_pinterest_audiences.loading.resolve import ResolvedList
    from target_pinterest_audiences.loading.sender import Operation

DIGEST_SIZE = 32
PENDING_CONFIRMATIONS = 4  # calls accepted by Pinterest, not yet in the ledger (memory bound)
# ADD calls are counted in the ledger's upload tally before they are sent; counting ahead for
# this many members at a time keeps that small write off each call (and out of the writer's
# way). A crash leaves the tally at most this much too high, the direction it errs in anyway.
NOTE_AHEAD_MEMBERS = 100_000


class Changes(t.Protocol):
    """The members to add and remove, and what to do once Pinterest accepted a call."""

    add_count: int
    remove_count: int
    mirror: MirrorFigures | None  # what mirror mode knows of the list; None in explicit mode

    def adds(self, chunk: int) -> Iterator[bytes]: ...
    def removes(self, chunk: int) -> Iterator[bytes]: ...
    def created(self, list_id: str, blob: bytes) -> None: ...  # the list came with these
    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None: ...
    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None: ...
    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None: ...


class Strategy(t.Protocol):
    # Holds its list exclusively across runs (ledger locks): what it finds after taking the
    # lock must come from a read made after that.
    exclusive: bool

    def locked(self, plan: StreamPlan) -> t.ContextManager[None]: ...
    def locked_list(self, list_id: str) -> t.ContextManager[None]: ...
    def changes(
        self, plan: StreamPlan, resolved: ResolvedList | None, *, check: bool
    ) -> t.ContextManager[Changes]: ...


class ExplicitChanges:
    """Explicit mode: each row's action, as the stream's last row of each member says."""

    def __init__(self, plan: StreamPlan) -> None:
        self._plan = plan
        self.add_count = plan.adds.count
        self.remove_count = plan.removes.count
        self.mirror: MirrorFigures | None = None

    def adds(self, chunk: int) -> Iterator[bytes]:
        return self._plan.adds.blobs(chunk)

    def removes(self, chunk: int) -> Iterator[bytes]:
        return self._plan.removes.blobs(chunk)

    def created(self, list_id: str, blob: bytes) -> None:
        return None  # nothing to remember

    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None:
        return None

    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None:
        return None

    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None:
        return None


class Explicit:
    """Explicit mode needs no lock and no memory."""

    exclusive = False

    def locked(self, plan: StreamPlan) -> t.ContextManager[None]:
        return contextlib.nullcontext()

    def locked_list(self, list_id: str) -> t.ContextManager[None]:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def changes(
        self, plan: StreamPlan, resolved: ResolvedList | None, *, check: bool
    ) -> Iterator[Changes]:
        yield ExplicitChanges(plan)


class LedgerWriter:
    """Ledger writes on `threads` threads of their own (started in order), one per write the
    database takes at once; at most `limit` per thread waiting."""

    def __init__(self, threads: int = 1, limit: int = PENDING_CONFIRMATIONS) -> None:
        self._threads = threads
        self._limit = limit * threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tpa-ledger-write")
        self._pending: deque[Future[None]] = deque()

    def write_now(self, write: Callable[[], None]) -> None:
        """Run ``write`` in this thread now; on a database that takes one write at a time
        (SQLite), after the queued ones, so that it never waits on their lock."""
        if self._threads == 1:
            self.settle()
        write()

    def submit(self, write: Callable[[], None]) -> None:
        """Queue ``write``; first re-raise a failed earlier write, and wait while too many wait."""
        while self._pending and (self._pending[0].done() or len(self._pending) >= self._limit):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write))

    def settle(self) -> None:
        """Wait for every queued write; re-raise the first that failed."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for the writes in progress (never leave one running past the lock) and stop."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


class MirrorChanges:
    """Mirror mode: the difference between the stream and the ledger, confirmed call by call."""

    def __init__(
        self, ledger: Ledger, account: str, diff: MembershipDiff, left_out: int,
        writer: LedgerWriter,
    ) -> None:  # fmt: skip
        self._ledger = ledger
        self._account = account
        self._diff = diff
        self._writer = writer
        self._noted_ahead: dict[str, int] = {}  # per list: noted in the tally, not yet sent
        self.add_count = diff.add_count
        self.remove_count = diff.remove_count
        self.mirror: MirrorFigures | None = MirrorFigures(diff.desired_count, left_out)

    def adds(self, chunk: int) -> Iterator[bytes]:
        return self._diff.adds(chunk)

    def removes(self, chunk: int) -> Iterator[bytes]:
        return self._diff.removes(chunk)

    def created(self, list_id: str, blob: bytes) -> None:
        self._ledger.note_uploaded(self._account, list_id, len(blob) // DIGEST_SIZE)
        self._ledger.confirm_added(self._account, list_id, blob)

    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None:
        # Counted before it is sent, so that a crash after Pinterest counted it but before
        # the ledger confirmed it never reads as members someone else uploaded.
        if operation != "ADD":
            return
        members = len(blob) // DIGEST_SIZE
        ahead = self._noted_ahead.get(list_id, 0)
        if ahead < members:
            more = max(members - ahead, NOTE_AHEAD_MEMBERS)
            self._writer.write_now(lambda: self._ledger.note_uploaded(self._account, list_id, more))
            ahead += more
        self._noted_ahead[list_id] = ahead - members

    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None:
        # Refused whole and sent again in pieces (each noted before it is sent): what was
        # noted for it goes back to the count noted ahead.
        if operation == "ADD":
            members = len(blob) // DIGEST_SIZE
            self._noted_ahead[list_id] = self._noted_ahead.get(list_id, 0) + members

    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None:
        ledger, account = self._ledger, self._account
        if operation == "ADD":
            self._writer.submit(lambda: ledger.confirm_added(account, list_id, blob))
            return

        def removed() -> None:
            ledger.confirm_removed(account, list_id, blob)
            # Noted once accepted (as ADDs are before): the tally errs towards more.
            ledger.note_uploaded(account, list_id, -(len(blob) // DIGEST_SIZE))

        self._writer.submit(removed)

    def settle(self) -> None:
        """Every confirmation written, and the tally noted ahead but never sent taken back."""
        self._writer.settle()
        for list_id, ahead in self._noted_ahead.items():
            if ahead:
                self._ledger.note_uploaded(self._account, list_id, -ahead)
        self._noted_ahead.clear()


class Mirror:
    """Mirror mode: one run at a time per list (ledger locks), the removal guard, the diff."""

    exclusive = True

    def __init__(
        self,
        ledger: Ledger,
        account: str,
        logger: logging.Logger,
        *,
        max_removal_fraction: float,
        lock_wait_seconds: float,
    ) -> None:
        self.ledger = ledger
        self.account = account
        self.logger = logger
        self.max_removal_fraction = max_removal_fraction
        self.lock_wait_seconds = lock_wait_seconds
        self._locked: set[str] = set()

    def locked(self, plan: StreamPlan) -> t.ContextManager[None]:
        key = f"list:{plan.segment_id}" if plan.segment_id else f"name:{plan.segment_name}"
        return self._lock(key)

    def locked_list(self, list_id: str) -> t.ContextManager[None]:
        # A run naming this list by segment_id locks its id: take that lock too, so that runs
        # by name and by id on one list never interleave their ledger updates.
        return self._lock(f"list:{list_id}")

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        if key in self._locked:
            yield
            return
        with self.ledger.lock(self.account, key, wait_seconds=self.lock_wait_seconds):
            self._locked.add(key)
            try:
                yield
            finally:
                self._locked.discard(key)

    @contextlib.contextmanager
    def changes(
        self, plan: StreamPlan, resolved: ResolvedList | None, *, check: bool
    ) -> Iterator[Changes]:
        list_id = resolved.id if resolved is not None else None
        if check and plan.adds.count == 0:
            known = self.ledger.count(self.account, list_id) if list_id else 0
            raise StreamRefused(
                f"Stream '{plan.stream}' was refused and nothing was sent for it: in mirror mode "
                f"an empty stream would empty the list (remove all {known} members the ledger "
                "knows for it). If that is really wanted, remove the members with "
                "sync_mode=explicit and action=remove."
            )
        desired = Partitioned(plan.adds.partitions())
        with self.ledger.diff(self.account, list_id, desired) as diff:
            if check:
                self._check(plan, resolved, diff)
            writer = LedgerWriter(threads=self.ledger.concurrent_writes)
            changes = MirrorChanges(self.ledger, self.account, diff, plan.removes.count, writer)
            try:
                yield changes
            except BaseException:
                # The stream failed (Pinterest, the network, the ledger itself): still record
                # what Pinterest accepted, if the ledger lets us; the error that stopped the
                # stream is the one to report.
                with contextlib.suppress(Exception):
                    changes.settle()
                raise
            else:
                changes.settle()
            finally:
                writer.close()

    def _check(self, plan: StreamPlan, resolved: ResolvedList | None, diff: MembershipDiff) -> None:
        if resolved is not None:
            self._warn_outside_members(plan, resolved, diff)
        known, removing = diff.known_count, diff.remove_count
        limit = self.max_removal_fraction
        if known and limit < 1.0 and removing > limit * known:
            raise StreamRefused(
                f"Stream '{plan.stream}' was refused and nothing was sent for it: mirror mode "
                f"would remove {removing} of the {known} members the ledger knows for this list "
                f"({removing / known:.0%}), more than max_removal_fraction={limit}. If the "
                "upstream query is right, raise max_removal_fraction (1.0 turns the guard off) "
                "for this run."
            )
        self.logger.info(
            "Stream '%s': mirror diff for list %s: %d desired, %d known, %d to add, %d to remove.",
            plan.stream,
            resolved.id if resolved is not None else "(not created yet)",
            diff.desired_count,
            known,
            diff.add_count,
            removing,
        )

    def _warn_outside_members(
        self, plan: StreamPlan, resolved: ResolvedList, diff: MembershipDiff
    ) -> None:
        """Pinterest's own counters (records uploaded minus records removed) show more than the
        ledger accounts for: the list holds members mirror mode never recorded, and cannot
        remove (issue 11.2)."""
        on_pinterest = resolved.uploaded_records - resolved.removed_records
        accounted = self.ledger.uploaded(self.account, resolved.id)
        if accounted is None:  # a list recorded before the ledger counted uploads
            outside = diff.known_count == 0 and on_pinterest > 0
            accounted = 0
        else:
            outside = on_pinterest > accounted
        if not outside:
            return
        self.logger.warning(
            "Stream '%s': customer list %s shows %d uploaded records (net of removals) on "
            "Pinterest, but this target's ledger accounts for %d: the list holds members "
            "that mirror mode never recorded (explicit runs, another tool, Ads Manager), and "
            "Pinterest cannot list a list's members, so mirror mode cannot remove them. Two "
            "ways out: start the audience on a fresh list (a new segment_name), or send the "
            "old members once as explicit remove rows (sync_mode=explicit, action=remove).",
            plan.stream,
            resolved.id,
            on_pinterest,
            accounted,
        )
