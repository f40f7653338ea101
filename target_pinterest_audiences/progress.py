"""Progress lines at a steady interval, for long runs: while reading, while sending, and for
the whole run while many streams sync side by side."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from target_pinterest_audiences.input.streams import StreamInput
    from target_pinterest_audiences.pinterest import ClientStats


class ReadProgress:
    """While input is read: per stream, rows read so far and the reading rate."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self.started = time.monotonic()
        self._next = self.started + interval
        self._last_rows: dict[str, tuple[float, int]] = {}

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def report(self, streams: t.Iterable[StreamInput]) -> None:
        now = time.monotonic()
        self._next = now + self.interval
        for stream in streams:
            since, rows_then = self._last_rows.get(stream.name, (self.started, 0))
            rate = (stream.rows - rows_then) / max(now - since, 1e-9)
            self._last_rows[stream.name] = (now, stream.rows)
            self.logger.info(
                "Progress: stream '%s': %d rows read, %d invalid, %.0f rows/s; nothing is sent "
                "until the stream has been read and checked whole.",
                stream.name,
                stream.rows,
                stream.invalid_rows,
                rate,
            )


class _Ticker:
    """A background thread that calls `tick` every `interval` seconds inside a `with` block
    (none when the interval is 0 or `wanted` is false)."""

    def __init__(self, interval: float, name: str, *, wanted: bool = True) -> None:
        self.interval = interval
        self._wanted = wanted and interval > 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> t.Self:
        if self._wanted:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        raise NotImplementedError


class SendProgress(_Ticker):
    """While members are sent: a background thread logs members sent, rate and calls in flight."""

    def __init__(self, logger: logging.Logger, stream: str, total: int, interval: float) -> None:
        super().__init__(interval, "progress")
        self.logger = logger
        self.stream = stream
        self.total = total
        self.sent = 0
        self.in_flight = 0
        self.calls = 0
        self._started = time.monotonic()

    def tick(self) -> None:
        elapsed = time.monotonic() - self._started
        self.logger.info(
            "Progress: stream '%s': %d of %d members sent (%.0f/s), %d calls done, %d in flight.",
            self.stream,
            self.sent,
            self.total,
            self.sent / max(elapsed, 1e-9),
            self.calls,
            self.in_flight,
        )


class RunProgress(_Ticker):
    """While the run's streams sync: how many are done, syncing and waiting, the calls made and
    the time spent waiting for the quota, logged by a background thread at a steady interval;
    and the run's total line at the end."""

    def __init__(
        self, logger: logging.Logger, *, total: int, stats: ClientStats, interval: float
    ) -> None:
        super().__init__(interval, "run-progress", wanted=total > 1)
        self.logger = logger
        self.total = total
        self.stats = stats
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.syncing_now = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def syncing(self) -> Iterator[Callable[[], None]]:
        """Count a stream as syncing inside the block; call the yielded ``synced()`` when it
        synced (a block left without it counts as failed)."""
        succeeded = False

        def synced() -> None:
            nonlocal succeeded
            succeeded = True

        with self._lock:
            self.syncing_now += 1
        try:
            yield synced
        finally:
            with self._lock:
                self.syncing_now -= 1
                self.done += 1
                self.failed += 0 if succeeded else 1

    def skipped(self) -> None:
        """A stream that never started (the run was stopped)."""
        with self._lock:
            self.done += 1
            self.failed += 1

    def tick(self) -> None:
        self.logger.info("Progress: %s", self.line())

    def line(self) -> str:
        with self._lock:
            done, failed, syncing = self.done, self.failed, self.syncing_now
        waiting = self.total - done - syncing
        calls = self.stats.snapshot()
        return (
            f"{done} of {self.total} streams done ({failed} failed or refused), {syncing} "
            f"syncing, {waiting} waiting; {calls['writes']} write and {calls['reads']} read "
            f"calls, {calls['retries']} retries, {calls['pacer_wait_seconds']:.1f}s waiting "
            f"for the quota; {time.monotonic() - self.started:.0f}s so far."
        )

    def log_total(self, *, added: int, removed: int) -> None:
        """The run's last line: streams, calls, waits and members, all streams together."""
        with self._lock:
            done, failed = self.done, self.failed
        calls = self.stats.snapshot()
        self.logger.info(
            "Total: %d stream(s) in %.1fs: %d synced, %d failed or refused; %d write and %d "
            "read calls, %d retries, %.1fs waiting for the quota; %d members sent as ADD, %d "
            "as REMOVE.",
            done,
            time.monotonic() - self.started,
            done - failed,
            failed,
            calls["writes"],
            calls["reads"],
            calls["retries"],
            calls["pacer_wait_seconds"],
            added,
            removed,
        )
