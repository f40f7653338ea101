"""Send a list's ADD and REMOVE calls, a few in flight, within the run's write quota.

The calls run on the run's call pool, shared by every stream: threads do not grow with the
number of streams, and the pacer serves the calls of all streams in the order they asked, so a
large stream and many small ones each get their turn. Calls are pulled lazily from an iterator
of (operation, blob) pairs, so only the calls in flight hold their members in memory.
Membership is a set, so a call retried after a lost answer does no harm; `on_accepted` runs in
the stream's thread, in completion order, once Pinterest accepted a call (mirror mode records
the call's members in its ledger then, and only then).

A call Pinterest refuses as too large (413) is split in halves and sent again, and the run's
`CallSize` shrinks so that every later call (of this stream and the next) is that small.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from target_pinterest_audiences.pinterest import PinterestClient, RequestTooLarge
from target_pinterest_audiences.progress import SendProgress

Operation = Literal["ADD", "REMOVE"]
DIGEST_SIZE = 32
Hook = Callable[[Operation, bytes], None]


@dataclass
class CallSize:
    """The most members one call carries: `records_per_request`, lowered by Pinterest's 413s.

    One for the run, shared by the streams syncing side by side (a 413 says something about
    Pinterest, not about one list)."""

    limit: int
    logger: logging.Logger
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cut(self, blob: bytes) -> list[bytes]:
        """`blob` in pieces of at most `limit` members."""
        step = self.limit * DIGEST_SIZE
        return [blob[i : i + step] for i in range(0, len(blob), step)] or [blob]

    def shrink(self, refused: RequestTooLarge, members: int) -> None:
        """A call of `members` was too large: halve it (the error stands for a single member)."""
        if members <= 1:
            raise refused
        with self._lock:
            smaller = min(self.limit, members // 2)
            if smaller >= self.limit:
                return
            self.limit = smaller
        self.logger.warning(
            "Pinterest refused a call of %d records as too large (HTTP 413); sending at "
            "most %d records per call from now on, for the rest of the run.",
            members,
            smaller,
        )


def exceptions_by_code(answer: Any) -> Counter[str]:
    """Pinterest's `exceptions` of a customer-list answer, counted by code (never a record)."""
    counts: Counter[str] = Counter()
    exceptions = answer.get("exceptions") if isinstance(answer, dict) else None
    items: list[tuple[object, object]] = []
    if isinstance(exceptions, dict):
        items = list(exceptions.items())
    elif isinstance(exceptions, list):
        items = [(None, item) for item in exceptions]
    for key, value in items:
        code, count = key, 1
        if isinstance(value, dict):
            code = value.get("code", key)
            raw = value.get("count", 1)
            count = raw if isinstance(raw, int) and not isinstance(raw, bool) else 1
        elif isinstance(value, int) and not isinstance(value, bool):
            count = value
        counts[str(code)] += count
    return counts


@dataclass
class Sent:
    """Members Pinterest accepted, by operation, and the records it said it could not use."""

    added: int = 0
    removed: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)

    def count(self, operation: Operation, members: int) -> None:
        if operation == "ADD":
            self.added += members
        else:
            self.removed += members

    def absorb(self, other: Sent) -> None:
        self.added += other.added
        self.removed += other.removed
        self.exceptions.update(other.exceptions)


@dataclass
class Sender:
    pool: Executor  # the run's call threads
    logger: logging.Logger
    size: CallSize
    calls_in_flight: int  # of one stream, at most
    progress_interval: float

    def send(
        self,
        client: PinterestClient,
        list_id: str,
        calls: Iterator[tuple[Operation, bytes]],
        *,
        before_send: Hook | None = None,
        on_resend: Hook | None = None,
        on_too_large: Hook | None = None,
        on_accepted: Hook | None = None,
        stream: str,
        total: int,
    ) -> Sent:
        """Send every call; return what Pinterest accepted. The first failure is re-raised.

        `before_send` runs in this thread just before a call is handed to a sender thread;
        `on_resend` in the sender thread, before a call that may have been applied already
        (its answer was lost) goes again; `on_too_large` when Pinterest refused a call as too
        large (its pieces go again).
        """
        sent = Sent()
        waiting: deque[tuple[Operation, bytes]] = deque()  # pieces of split or cut calls
        in_flight: dict[Future[Any], tuple[Operation, bytes]] = {}
        progress = SendProgress(self.logger, stream, total, self.progress_interval)

        def next_call() -> tuple[Operation, bytes] | None:
            if not waiting:
                call = next(calls, None)
                if call is None:
                    return None
                waiting.append(call)
            operation, blob = waiting.popleft()
            first, *rest = self.size.cut(blob)
            waiting.extendleft((operation, piece) for piece in reversed(rest))
            return operation, first

        with progress:
            try:
                while True:
                    while len(in_flight) < self.calls_in_flight:
                        call = next_call()
                        if call is None:
                            break
                        if before_send is not None:
                            before_send(*call)
                        resend = partial(on_resend, *call) if on_resend is not None else None
                        future = self.pool.submit(
                            client.update_customer_list, list_id, *call, on_resend=resend
                        )
                        in_flight[future] = call
                    progress.in_flight = len(in_flight)
                    if not in_flight:
                        break
                    self._collect(in_flight, waiting, sent, on_too_large, on_accepted, progress)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                # Never return while a call of this list is still on its way: the caller
                # releases the list's lock next.
                wait(list(in_flight))
                raise
        return sent

    def _collect(
        self,
        in_flight: dict[Future[Any], tuple[Operation, bytes]],
        waiting: deque[tuple[Operation, bytes]],
        sent: Sent,
        on_too_large: Hook | None,
        on_accepted: Hook | None,
        progress: SendProgress,
    ) -> None:
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            operation, blob = in_flight.pop(future)
            members = len(blob) // DIGEST_SIZE
            try:
                answer = future.result()  # re-raises the call's error
            except RequestTooLarge as refused:
                self.size.shrink(refused, members)
                if on_too_large is not None:
                    on_too_large(operation, blob)
                waiting.appendleft((operation, blob))  # cut again at the smaller size
                continue
            sent.count(operation, members)
            sent.exceptions.update(exceptions_by_code(answer))
            progress.sent += members
            progress.calls += 1
            if on_accepted is not None:
                on_accepted(operation, blob)
        progress.in_flight = len(in_flight)
