"""What a stream changes in its list, by sync mode: the strategies over the same primitives.

Explicit mode sends what the rows say: their adds and their removes. Mirror mode makes the
list equal to the stream: it diffs the stream's members against the ledger of members Pinterest
accepted before and sends the difference. Pinterest cannot list a list's members, so the
ledger is the only memory of who is in it, and both modes keep it: each call is recorded once
Pinterest accepted it (issue 20.1: so that mirror mode knows, and can remove, the members
explicit runs sent). A crash at any point leaves a ledger that the next run completes.

The ledger is written behind the calls, by a thread of its own (two on PostgreSQL), while the
next calls go out (a database's work releases the GIL): a few confirmations may wait, never
more than `PENDING_CONFIRMATIONS` per thread, and all are written before the stream's lock is
released. A crash loses at most those, which Pinterest accepted and the next run sends again
(membership is a set); the ledger still never holds a member Pinterest did not accept.

Both modes also count, per list, the uploaded records they account for (`outside.py`): a
mirror run warns while Pinterest's counter shows uploads from elsewhere, and an explicit run
that removes members after such a warning takes the records it named as handled.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import typing as t
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from target_pinterest_audiences.errors import StreamRefused
from target_pinterest_audiences.ledger import Partitioned
from target_pinterest_audiences.loading.outside import Outside, accounted_for
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
    def resent(self, list_id: str, operation: Operation, blob: bytes) -> None: ...
    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None: ...
    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None: ...


class Strategy(t.Protocol):
    def locked(self, plan: StreamPlan) -> t.ContextManager[None]: ...
    def locked_list(self, list_id: str) -> t.ContextManager[None]: ...
    def changes(
        self, plan: StreamPlan, resolved: ResolvedList | None, *, check: bool
    ) -> t.ContextManager[Changes]: ...


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


class Recorder:
    """What Pinterest accepted, recorded in the ledger behind the calls (both sync modes):
    members added and removed, and the uploaded records the target accounts for."""

    def __init__(self, ledger: Ledger, account: str, writer: LedgerWriter) -> None:
        self._ledger = ledger
        self._account = account
        self._writer = writer
        self._noted_ahead: dict[str, int] = {}  # per list: noted in the tally, not yet sent
        self._resent: dict[str, int] = {}  # per list: records sent again (sender threads)
        self._resent_lock = threading.Lock()
        self.removed = 0  # members whose REMOVE Pinterest accepted

    def created(self, list_id: str, blob: bytes) -> None:
        self._ledger.note_accounted(self._account, list_id, len(blob) // DIGEST_SIZE)
        self._ledger.confirm_added(self._account, list_id, blob)

    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None:
        # Counted before it is sent, so that a crash after Pinterest counted it but before
        # the ledger confirmed it never reads as members someone else uploaded.
        if operation != "ADD":
            return
        with self._resent_lock:
            resent = self._resent.pop(list_id, 0)
        members = len(blob) // DIGEST_SIZE + resent
        ahead = self._noted_ahead.get(list_id, 0)
        if ahead < members:
            more = max(members - ahead, NOTE_AHEAD_MEMBERS)
            ledger, account = self._ledger, self._account
            self._writer.write_now(lambda: ledger.note_accounted(account, list_id, more))
            ahead += more
        self._noted_ahead[list_id] = ahead - members

    def resent(self, list_id: str, operation: Operation, blob: bytes) -> None:
        """A call that may have been applied (its answer was lost) goes again: Pinterest may
        count its records twice. Called from the sender's threads; noted with the next call."""
        if operation == "ADD":
            with self._resent_lock:
                self._resent[list_id] = self._resent.get(list_id, 0) + len(blob) // DIGEST_SIZE

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
        else:
            self.removed += len(blob) // DIGEST_SIZE
            self._writer.submit(lambda: ledger.confirm_removed(account, list_id, blob))

    def settle(self) -> None:
        """Every confirmation written, and the tally noted ahead but never sent taken back."""
        self._writer.settle()
        with self._resent_lock:
            resent, self._resent = self._resent, {}
        for list_id in {*self._noted_ahead, *resent}:
            back = self._noted_ahead.get(list_id, 0) - resent.get(list_id, 0)
            if back:
                self._ledger.note_accounted(self._account, list_id, -back)
        self._noted_ahead.clear()


class ExplicitChanges:
    """Explicit mode: each row's action, as the stream's last row of each member says.

    `recorder` None: a dry run, which records nothing.
    """

    def __init__(self, plan: StreamPlan, recorder: Recorder | None = None) -> None:
        self._plan = plan
        self._recorder = recorder
        self.add_count = plan.adds.count
        self.remove_count = plan.removes.count
        self.mirror: MirrorFigures | None = None

    def adds(self, chunk: int) -> Iterator[bytes]:
        return self._plan.adds.blobs(chunk)

    def removes(self, chunk: int) -> Iterator[bytes]:
        return self._plan.removes.blobs(chunk)

    def created(self, list_id: str, blob: bytes) -> None:
        if self._recorder is not None:
            self._recorder.created(list_id, blob)

    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None:
        if self._recorder is not None:
            self._recorder.before_send(list_id, operation, blob)

    def resent(self, list_id: str, operation: Operation, blob: bytes) -> None:
        if self._recorder is not None:
            self._recorder.resent(list_id, operation, blob)

    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None:
        if self._recorder is not None:
            self._recorder.too_large(list_id, operation, blob)

    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None:
        if self._recorder is not None:
            self._recorder.accepted(list_id, operation, blob)


class MirrorChanges:
    """Mirror mode: the difference between the stream and the ledger, confirmed call by call."""

    def __init__(self, diff: MembershipDiff, recorder: Recorder, mirror: MirrorFigures) -> None:
        self._diff = diff
        self._recorder = recorder
        self.add_count = diff.add_count
        self.remove_count = diff.remove_count
        self.mirror: MirrorFigures | None = mirror

    def adds(self, chunk: int) -> Iterator[bytes]:
        return self._diff.adds(chunk)

    def removes(self, chunk: int) -> Iterator[bytes]:
        return self._diff.removes(chunk)

    def created(self, list_id: str, blob: bytes) -> None:
        self._recorder.created(list_id, blob)

    def before_send(self, list_id: str, operation: Operation, blob: bytes) -> None:
        self._recorder.before_send(list_id, operation, blob)

    def resent(self, list_id: str, operation: Operation, blob: bytes) -> None:
        self._recorder.resent(list_id, operation, blob)

    def too_large(self, list_id: str, operation: Operation, blob: bytes) -> None:
        self._recorder.too_large(list_id, operation, blob)

    def accepted(self, list_id: str, operation: Operation, blob: bytes) -> None:
        self._recorder.accepted(list_id, operation, blob)


class Recorded:
    """What both modes share: one run at a time per list (ledger locks), the ledger's memory
    of the list's members and uploads. The ledger opens at first use (`ledger()`)."""

    def __init__(
        self,
        ledger: Callable[[], Ledger],
        account: str,
        logger: logging.Logger,
        *,
        lock_wait_seconds: float,
    ) -> None:
        self._ledger = ledger
        self.account = account
        self.logger = logger
        self.lock_wait_seconds = lock_wait_seconds
        self._locked: set[str] = set()

    @property
    def ledger(self) -> Ledger:
        return self._ledger()

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

    def outside(self, resolved: ResolvedList) -> Outside:
        """The list's uploads on Pinterest against what the ledger accounts for (a list the
        ledger recorded under an older rule is settled now, once)."""
        tally = self.ledger.upload_tally(self.account, resolved.id)
        accounted = accounted_for(tally, resolved.uploaded_records, resolved.removed_records)
        if tally.recorded and tally.accounted is None:
            self.ledger.settle_accounted(self.account, resolved.id, accounted)
        return Outside(resolved.uploaded_records, accounted, tally.warned)

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recorder]:
        """A recorder whose writes are all made (when the ledger lets us) before it ends."""
        writer = LedgerWriter(threads=self.ledger.concurrent_writes)
        recorder = Recorder(self.ledger, self.account, writer)
        try:
            yield recorder
        except BaseException:
            # The stream failed (Pinterest, the network, the ledger itself): still record
            # what Pinterest accepted, if the ledger lets us; the error that stopped the
            # stream is the one to report.
            with contextlib.suppress(Exception):
                recorder.settle()
            raise
        else:
            recorder.settle()
        finally:
            writer.close()


class Explicit(Recorded):
    """Explicit mode: the rows' actions, recorded so that mirror mode knows these members."""

    @contextlib.contextmanager
    def changes(
        self, plan: StreamPlan, resolved: ResolvedList | None, *, check: bool
    ) -> Iterator[Changes]:
        if not check:  # a dry run: nothing is sent, nothing recorded (no ledger opened)
            yield ExplicitChanges(plan)
            return
        # Read (and, for a list recorded under an older rule, settled) before anything is
        # noted: what an explicit run removing members after a warning takes as handled.
        handles = self.outside(resolved).handled_by_removal if resolved is not None else 0
        with self.recording() as recorder:
            yield ExplicitChanges(plan, recorder)
        if handles and recorder.removed and resolved is not None:
            self.ledger.take_as_handled(self.account, resolved.id, handles)
            self.logger.info(
                "Stream '%s': this run removed %d member(s) from customer list %s, the way out "
                "the last mirror run's warning gave: the %d record(s) uploaded from elsewhere "
                "that it named are taken as handled, and mirror runs stop warning about them.",
                plan.stream,
                recorder.removed,
                resolved.id,
                handles,
            )


class Mirror(Recorded):
    """Mirror mode: the removal guard, the diff, the warning about members from elsewhere."""

    def __init__(
        self,
        ledger: Callable[[], Ledger],
        account: str,
        logger: logging.Logger,
        *,
        max_removal_fraction: float,
        lock_wait_seconds: float,
    ) -> None:
        super().__init__(ledger, account, logger, lock_wait_seconds=lock_wait_seconds)
        self.max_removal_fraction = max_removal_fraction

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
            outside = 0
            if check:
                outside = self._check(plan, resolved, diff)
            figures = MirrorFigures(diff.desired_count, plan.removes.count, outside)
            with self.recording() as recorder:
                yield MirrorChanges(diff, recorder, figures)

    def _check(self, plan: StreamPlan, resolved: ResolvedList | None, diff: MembershipDiff) -> int:
        """Warn about members from elsewhere, refuse a run that removes too much; return the
        records uploaded from elsewhere (0: none)."""
        outside = self._warn_outside_members(plan, resolved, diff) if resolved else 0
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
        return outside

    def _warn_outside_members(
        self, plan: StreamPlan, resolved: ResolvedList, diff: MembershipDiff
    ) -> int:
        """Pinterest counts more uploaded records than this target accounts for: the list may
        hold members it never recorded, which mirror mode cannot remove (issues 11.2, 20.1).
        Said on every mirror run until the user takes a way out; the figure is noted, so that
        an explicit run removing members afterwards takes exactly it as handled."""
        outside = self.outside(resolved)
        if outside.records == 0:
            if outside.warned:
                self.ledger.note_warned(self.account, resolved.id, 0)
            return 0
        self.ledger.note_warned(self.account, resolved.id, outside.records)
        self.logger.warning(
            "Stream '%s': customer list %s may hold up to %d member(s) this target has no "
            "record of. Pinterest counts %d records uploaded to it; this target accounts for "
            "%d of them (its explicit and mirror runs, whose members its ledger knows: %d now). "
            "The other %d came from elsewhere: another tool, Ads Manager, or explicit runs of "
            "a release that did not record them. Pinterest cannot list a list's members, so "
            "mirror mode cannot remove those. Two ways out: start the audience on a fresh list "
            "(a new segment_name), or send the old members once as explicit remove rows "
            "(sync_mode=explicit, action=remove): that run takes these %d records as handled, "
            "and this warning stops.",
            plan.stream,
            resolved.id,
            outside.records,
            outside.uploaded,
            outside.accounted,
            diff.known_count,
            outside.records,
            outside.records,
        )
        return outside.records
