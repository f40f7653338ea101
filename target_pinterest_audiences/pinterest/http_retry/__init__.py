"""Retry policy kept apart from the transport (after slack-sdk's ``http_retry``).

* :mod:`.handler` - handlers deciding whether an attempt is retried and how long to wait,
* :mod:`.interval` - interval calculators (exponential backoff),
* :mod:`.jitter` - jitter (seedable),
* :mod:`.failure` - what a call without an answer ran into.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .handler import (
    ConnectionErrorRetryHandler,
    ConnectionRefusedRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
    ServerErrorRetryHandler,
    TimeoutErrorRetryHandler,
    parse_ratelimit_reset,
    parse_retry_after,
)
from .interval import BackoffRetryIntervalCalculator, RetryIntervalCalculator
from .jitter import FullJitter, Jitter, NoJitter


def default_retry_handlers(
    *,
    seed: int | None = None,
    backoff_base: float = 1.0,
    backoff_factor: float = 2.0,
    max_interval: float = 60.0,
    refused_max_total_wait: float = 4.0,
    wall_clock: Callable[[], float] = time.time,
) -> list[RetryHandler]:
    """429, 5xx/408, timeout, refused and connection handlers sharing one seedable jitter.

    A refused connection backs off from half of ``backoff_base`` and waits at most
    ``refused_max_total_wait`` seconds in all; the others get the policy's whole budget.
    """
    rng = random.Random(seed)

    def calc(base: float = backoff_base) -> BackoffRetryIntervalCalculator:
        return BackoffRetryIntervalCalculator(
            backoff_base=base,
            backoff_factor=backoff_factor,
            max_interval=max_interval,
            jitter=FullJitter(rng=rng),
        )

    return [
        RateLimitErrorRetryHandler(calc(), wall_clock=wall_clock),
        ServerErrorRetryHandler(calc()),
        TimeoutErrorRetryHandler(calc()),
        ConnectionRefusedRetryHandler(
            calc(backoff_base / 2), max_total_wait=refused_max_total_wait
        ),
        ConnectionErrorRetryHandler(calc()),
    ]


class _VirtualTime:
    """Monotonic clock advanced by an injected (fake) sleep function."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._sleep = sleep
        self._slept = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds)
        with self._lock:
            self._slept += max(0.0, seconds)

    def clock(self) -> float:
        with self._lock:
            return time.monotonic() + self._slept


@dataclass(frozen=True)
class RetryDecision:
    """``exhausted``: the caller must give up; ``wait_exceeds_budget``: because of this wait
    alone (for a 429: the quota will not lift within the budget)."""

    reason: str
    wait: float
    exhausted: bool
    wait_exceeds_budget: bool = False


class RetryPolicy:
    """Bounded retry budget per call plus the handlers deciding what is retryable.

    ``max_attempts`` counts every attempt of a call (the first one included);
    ``max_total_wait`` bounds the seconds slept between attempts of one call.
    ``sleep`` and ``clock`` (monotonic) are injectable so tests run instantly;
    the client also uses them for its pacers so that both agree on time, and
    ``wall_clock`` (Unix seconds) for the time a quota resets.
    """

    def __init__(
        self,
        max_attempts: int = 8,
        max_total_wait: float = 600.0,
        *,
        handlers: Sequence[RetryHandler] | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.wall_clock = wall_clock
        self.handlers = (
            list(handlers)
            if handlers is not None
            else default_retry_handlers(seed=seed, wall_clock=wall_clock)
        )
        if sleep is not time.sleep and clock is time.monotonic:
            # A fake sleep with the real clock would make pacers wait forever for time
            # that never passes: let the clock advance by what was "slept".
            virtual = _VirtualTime(sleep)
            self.sleep: Callable[[float], None] = virtual.sleep
            self.clock: Callable[[], float] = virtual.clock
        else:
            self.sleep = sleep
            self.clock = clock

    def decide(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> RetryDecision | None:
        """``None`` when no handler retries this outcome; else reason, wait and whether
        the budget is exhausted (in which case the caller must give up)."""
        for handler in self.handlers:
            if handler.can_retry(state, request, response, error):
                wait = max(0.0, float(handler.wait_seconds(state, request, response, error)))
                over = state.waited + wait > self.max_total_wait
                if handler.max_total_wait is not None:
                    waited = state.waited_by_reason.get(handler.reason, 0.0)
                    over = over or waited + wait > handler.max_total_wait
                exhausted = over or state.attempts >= self.max_attempts
                return RetryDecision(handler.reason, wait, exhausted, wait_exceeds_budget=over)
        return None

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(max_attempts={self.max_attempts}, max_total_wait={self.max_total_wait})"
        )


__all__ = [
    "BackoffRetryIntervalCalculator",
    "ConnectionErrorRetryHandler",
    "ConnectionRefusedRetryHandler",
    "FullJitter",
    "HttpRequest",
    "HttpResponse",
    "Jitter",
    "NoJitter",
    "RateLimitErrorRetryHandler",
    "RetryDecision",
    "RetryHandler",
    "RetryIntervalCalculator",
    "RetryPolicy",
    "RetryState",
    "ServerErrorRetryHandler",
    "TimeoutErrorRetryHandler",
    "default_retry_handlers",
    "parse_ratelimit_reset",
    "parse_retry_after",
]
