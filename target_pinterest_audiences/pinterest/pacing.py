"""Thread-safe pacing of API calls: one `Pacer` per run, shared by every stream and thread.

:class:`RateLimiter` is a sliding-window limiter: no more than ``calls_per_minute``
grants in any window of ``period`` seconds. It never waits while the window has
room (so a burst at start is allowed), serves waiting callers in the order they asked
(each reserves the next free slot), can be paused - after a 429 - so that every thread
waits until Pinterest's reset time, and can be stopped: a fatal error (a quota used up
for the day, a token without the scopes) makes every waiting and later ``acquire`` raise
at once instead of sending into the same wall.

:class:`Pacer` holds the two limiters of Pinterest's quotas (``ads_write`` and ``ads_read``)
and stops both together.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import RunStopped


class RateLimiter:
    def __init__(
        self,
        calls_per_minute: int,
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """``sleep``: how a caller waits for its slot (tests inject a fake clock's); by
        default an event wait that `stop` interrupts."""
        if calls_per_minute < 1:
            raise ValueError("calls_per_minute must be >= 1")
        self.calls_per_minute = calls_per_minute
        self.period = period
        self._clock = clock
        self._stopped = threading.Event()
        self._sleep: Callable[[float], object] = sleep or self._stopped.wait
        self._lock = threading.Lock()
        # Granted (or reserved, possibly in the future) call times, non-decreasing.
        self._grants: deque[float] = deque()
        self._paused_until = float("-inf")
        self._stop_reason: str | None = None
        self.calls = 0

    def _reserve(self, now: float) -> float:
        """Reserve the earliest slot >= now that keeps the window; call with the lock held."""
        horizon = now - self.period
        while self._grants and self._grants[0] <= horizon:
            self._grants.popleft()
        slot = max(now, self._paused_until)
        if self._grants:
            slot = max(slot, self._grants[-1])
        n = self.calls_per_minute
        if len(self._grants) >= n:
            # the n-th most recent grant must have left the window by `slot`
            slot = max(slot, self._grants[-n] + self.period)
        self._grants.append(slot)
        return slot

    def _check_stopped(self) -> None:
        if self._stop_reason is not None:
            raise RunStopped(self._stop_reason)

    def acquire(self) -> float:
        """Block until a call may be made; return the seconds waited.

        Raises :class:`RunStopped` once the limiter was stopped, also while waiting."""
        waited = 0.0
        while True:
            with self._lock:
                self._check_stopped()
                now = self._clock()
                slot = self._reserve(now)
            delay = slot - now
            if delay <= 0:
                break
            self._sleep(delay)
            waited += delay
            with self._lock:
                if self._stop_reason is not None or self._paused_until > self._clock():
                    # stopped or paused while we slept: give the slot back (and queue again)
                    with contextlib.suppress(ValueError):  # pruned already
                        self._grants.remove(slot)
                    self._check_stopped()
                    continue
                break
        with self._lock:
            self.calls += 1
        return waited

    def pause(self, seconds: float) -> None:
        """Make every caller wait until ``seconds`` from now (e.g. a 429's reset time)."""
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def stop(self, reason: str) -> None:
        """Make every waiting and later ``acquire`` raise :class:`RunStopped` with ``reason``."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        self._stopped.set()

    @property
    def paused_until(self) -> float:
        with self._lock:
            return self._paused_until

    def __repr__(self) -> str:
        return f"RateLimiter(calls_per_minute={self.calls_per_minute}, period={self.period})"


class Pacer:
    """The run's one pacer: Pinterest's write and read quotas, shared by every stream, every
    ad account and every thread of the run (Pinterest counts both per app and user)."""

    def __init__(
        self,
        *,
        writes_per_minute: int,
        reads_per_minute: int,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.writes = RateLimiter(writes_per_minute, period=period, clock=clock, sleep=sleep)
        self.reads = RateLimiter(reads_per_minute, period=period, clock=clock, sleep=sleep)

    def limiter(self, *, write: bool) -> RateLimiter:
        return self.writes if write else self.reads

    def stop(self, reason: str) -> None:
        """Stop every call of the run: waiting ones and later ones raise `RunStopped`."""
        self.writes.stop(reason)
        self.reads.stop(reason)
