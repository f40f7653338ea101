"""Send a list's ADD and REMOVE calls, a few in flight, within the client's write quota.

Calls are pulled lazily from an iterator of (operation, blob) pairs, so only the calls in
flight hold their members in memory. Membership is a set, so a call retried after a lost answer
does no harm; `on_accepted` runs in this thread, in completion order, once Pinterest accepted
a call (mirror mode records the call's members in its ledger then, and only then).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Literal

from target_pinterest_audiences.pinterest import PinterestClient
from target_pinterest_audiences.progress import SendProgress

Operation = Literal["ADD", "REMOVE"]
DIGEST_SIZE = 32
Accepted = Callable[[Operation, bytes], None]


@dataclass
class Sent:
    """Members Pinterest accepted, by operation."""

    added: int = 0
    removed: int = 0

    def count(self, operation: Operation, members: int) -> None:
        if operation == "ADD":
            self.added += members
        else:
            self.removed += members


@dataclass
class Sender:
    client: PinterestClient
    logger: logging.Logger
    calls_in_flight: int
    progress_interval: float

    def send(
        self,
        list_id: str,
        calls: Iterator[tuple[Operation, bytes]],
        *,
        on_accepted: Accepted | None = None,
        stream: str,
        total: int,
    ) -> Sent:
        """Send every call; return what Pinterest accepted. The first failure is re-raised."""
        sent = Sent()
        in_flight: dict[Future[None], tuple[Operation, bytes]] = {}
        progress = SendProgress(self.logger, stream, total, self.progress_interval)
        limit = self.calls_in_flight
        with (
            progress,
            ThreadPoolExecutor(max_workers=limit, thread_name_prefix="pinterest-call") as pool,
        ):
            try:
                for operation, blob in calls:
                    while len(in_flight) >= limit:
                        self._collect(in_flight, sent, on_accepted, progress)
                    future = pool.submit(self._call, list_id, operation, blob)
                    in_flight[future] = (operation, blob)
                    progress.in_flight = len(in_flight)
                while in_flight:
                    self._collect(in_flight, sent, on_accepted, progress)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        return sent

    def _call(self, list_id: str, operation: Operation, blob: bytes) -> None:
        self.client.update_customer_list(list_id, operation, blob)

    @staticmethod
    def _collect(
        in_flight: dict[Future[None], tuple[Operation, bytes]],
        sent: Sent,
        on_accepted: Accepted | None,
        progress: SendProgress,
    ) -> None:
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            operation, blob = in_flight.pop(future)
            future.result()  # re-raises the call's error
            members = len(blob) // DIGEST_SIZE
            sent.count(operation, members)
            progress.sent += members
            progress.calls += 1
            if on_accepted is not None:
                on_accepted(operation, blob)
        progress.in_flight = len(in_flight)
