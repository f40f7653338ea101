"""Thread-safe pacing of API calls.

:class:`RateLimiter` is a sliding-window limiter: no more than ``calls_per_minute``
grants in any window of ``period`` seconds. It never waits while the window has
room (so a burst at start is allowed) and can be paused - e.g. after a 429 - so
that every thread waits until Pinterest's reset time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        calls_per_minute: int,
        *,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_minute < 1:
            raise ValueError("calls_per_minute must be >= 1")
        self.calls_per_minute = calls_per_minute
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Granted (or reserved, possibly in the future) call times, non-decreasing.
        self._grants: deque[float] = deque()
        self._paused_until = float("-inf")
        self.total_wait = 0.0
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

    def acquire(self) -> float:
        """Block until a call may be made; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                slot = self._reserve(now)
            delay = slot - now
            if delay <= 0:
                break
            self._sleep(delay)
            waited += delay
            with self._lock:
                if self._paused_until <= self._clock():
                    break
                # paused while we slept: give the slot back and queue again
                with contextlib.suppress(ValueError):  # pruned already
                    self._grants.remove(slot)
        with self._lock:
            self.total_wait += waited
            self.calls += 1
        return waited

    def pause(self, seconds: float) -> None:
        """Make every caller wait until ``seconds`` from now (e.g. a 429's reset time)."""
        if seconds <= 0:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_until(self) -> float:
        with self._lock:
            return self._paused_until

    def __repr__(self) -> str:
        return f"RateLimiter(calls_per_minute={self.calls_per_minute}, period={self.period})"
