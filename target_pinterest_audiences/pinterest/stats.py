"""Counters of one `PinterestClient`, updated by the transport under their own lock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

RETRY_REASONS = ("429", "5xx", "connection", "refused", "timeout")


@dataclass
class ClientStats:
    """What a client did: calls, retries and waits. Updated through the ``record_*`` methods
    (thread-safe); single fields may be read at any time, :meth:`snapshot` reads them together."""

    reads: int = 0
    writes: int = 0
    retries: int = 0
    retries_by_reason: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(RETRY_REASONS, 0)
    )
    token_refreshes: int = 0
    auth_retries: int = 0
    # Wall time during which at least one call waited for the quota (calls in flight wait
    # side by side: their waits overlap, and are counted once).
    pacer_wait_seconds: float = 0.0
    retry_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _waited_until: float = field(default=float("-inf"), repr=False, compare=False)

    def record_attempt(self, *, write: bool, pacer_wait: float, token_refreshes: int) -> None:
        """One attempt of a call was sent, after waiting ``pacer_wait`` seconds for the quota."""
        with self._lock:
            if pacer_wait > 0:
                end = time.monotonic()
                start = max(end - pacer_wait, self._waited_until)
                self.pacer_wait_seconds += max(0.0, end - start)
                self._waited_until = max(self._waited_until, end)
            self.token_refreshes = token_refreshes
            if write:
                self.writes += 1
            else:
                self.reads += 1

    def record_auth_retry(self, *, token_refreshes: int) -> None:
        """A call is sent again after a 401 made the token manager refresh."""
        with self._lock:
            self.token_refreshes = token_refreshes
            self.auth_retries += 1

    def record_retry(self, reason: str, wait: float) -> None:
        """A call is retried for ``reason`` after ``wait`` seconds."""
        with self._lock:
            self.retries += 1
            self.retries_by_reason[reason] = self.retries_by_reason.get(reason, 0) + 1
            self.retry_wait_seconds += wait

    def snapshot(self) -> dict[str, Any]:
        """Every counter, read together."""
        with self._lock:
            return {
                "reads": self.reads,
                "writes": self.writes,
                "retries": self.retries,
                "retries_by_reason": dict(self.retries_by_reason),
                "token_refreshes": self.token_refreshes,
                "auth_retries": self.auth_retries,
                "pacer_wait_seconds": self.pacer_wait_seconds,
                "retry_wait_seconds": self.retry_wait_seconds,
            }
