"""A client-wide circuit breaker for Pinterest's quotas.

When a 429 says a quota is used up for longer than the retry budget (a Trial app's daily
quota), retrying into the same wall from every thread would only spend the budget of every
call. Once tripped for a category ("read" or "write"), every call of that category fails at
once with the same :class:`~.errors.QuotaExhausted` until the reset time has passed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from .errors import QuotaExhausted


def category_of(method: str) -> str:
    """Pinterest's rate-limit category of a call: ``ads_read`` for GET, ``ads_write`` else."""
    return "read" if method == "GET" else "write"


class QuotaBreaker:
    """Thread-safe; ``wall_clock`` gives Unix seconds (injectable for tests)."""

    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._tripped: dict[str, QuotaExhausted] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), tz=UTC)

    def trip(self, error: QuotaExhausted) -> None:
        """Refuse the calls of ``error.category`` until ``error.resets_at``."""
        with self._lock:
            known = self._tripped.get(error.category)
            if known is None or known.resets_at < error.resets_at:
                self._tripped[error.category] = error

    def check(self, call: str, method: str) -> None:
        """Raise :class:`QuotaExhausted` for ``call`` while its category's quota is used up."""
        category = category_of(method)
        with self._lock:
            tripped = self._tripped.get(category)
            if tripped is None:
                return
            now = self.now()
            if now >= tripped.resets_at:
                del self._tripped[category]
                return
        raise tripped.for_call(call, now=now)
