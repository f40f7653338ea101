"""Progress lines at a steady interval, for long runs: while reading and while sending."""

from __future__ import annotations

import logging
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.streams import StreamInput


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


class SendProgress:
    """While members are sent: a background thread logs members sent, rate and calls in flight."""

    def __init__(self, logger: logging.Logger, stream: str, total: int, interval: float) -> None:
        self.logger = logger
        self.stream = stream
        self.total = total
        self.interval = interval
        self.sent = 0
        self.in_flight = 0
        self.calls = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> SendProgress:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed = time.monotonic() - self._started
            self.logger.info(
                "Progress: stream '%s': %d of %d members sent (%.0f/s), %d calls done, "
                "%d in flight.",
                self.stream,
                self.sent,
                self.total,
                self.sent / max(elapsed, 1e-9),
                self.calls,
                self.in_flight,
            )
