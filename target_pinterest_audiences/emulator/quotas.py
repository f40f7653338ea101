"""Pinterest's rate limits: per-minute quotas by ``x-ratelimit-category`` and a daily quota
for all calls (Trial access), both answered 429 with code 8 and ``X-RateLimit-Reset``.

Only admitted calls count (a refused one does not use quota). Windows slide: a per-minute
quota admits a call when fewer than its limit were admitted in the last 60 s, and the reset
is when the oldest of them leaves the window. An emulated day begins with its first call and
lasts ``day_length`` seconds. Nothing here is persisted: a restarted emulator starts afresh.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from .options import Options
from .outcome import Json, Outcome

MINUTE = 60.0
RATE_LIMITED_CODE = 8
RATE_LIMITED_MESSAGE = "You have exceeded your rate limit. Try again later."


class Quotas:
    """Not thread-safe on its own: the emulator calls it under its lock."""

    def __init__(self, options: Options, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._minute: dict[str, deque[float]] = {}
        self._day_started: float | None = None
        self._calls_today = 0

    def reset(self) -> None:
        self._minute.clear()
        self.new_day()

    def new_day(self) -> None:
        """End the emulated day now: the daily count starts again with the next call."""
        self._day_started = None
        self._calls_today = 0

    def _per_minute_limit(self, category: str | None) -> int:
        limits = {
            "ads_write": self.options.ads_write_per_minute,
            "ads_read": self.options.ads_read_per_minute,
        }
        return limits.get(category or "", 0)

    def admit(self, category: str | None) -> Outcome | None:
        """Count a call of ``category`` and return None, or return the 429 refusing it."""
        now = self._clock()
        day_length = self.options.day_length
        if self._day_started is None or now >= self._day_started + day_length:
            self._day_started, self._calls_today = now, 0
        daily = self.options.daily_quota
        if daily and self._calls_today >= daily:
            return _rate_limited(self._day_started + day_length - now)
        limit = self._per_minute_limit(category)
        window = self._minute.setdefault(category or "", deque())
        while window and window[0] <= now - MINUTE:
            window.popleft()
        if limit and len(window) >= limit:
            return _rate_limited(window[-limit] + MINUTE - now)
        window.append(now)
        self._calls_today += 1
        return None

    def view(self) -> Json:
        """Today's count and when the day ends, for the control API."""
        now = self._clock()
        ends_in = None
        if self._day_started is not None:
            ends_in = max(0.0, self._day_started + self.options.day_length - now)
        return {
            "calls_today": self._calls_today,
            "daily_quota": self.options.daily_quota or None,
            "day_ends_in_seconds": ends_in,
            "last_minute": {
                category: sum(1 for t in window if t > now - MINUTE)
                for category, window in sorted(self._minute.items())
                if category
            },
        }


def _rate_limited(seconds: float) -> Outcome:
    reset = max(1, math.ceil(seconds))
    return Outcome(
        429,
        {"code": RATE_LIMITED_CODE, "message": RATE_LIMITED_MESSAGE},
        {"X-RateLimit-Reset": str(reset)},
    )
