"""Retry handlers: decide whether a failed attempt is retried and how long to wait.

Handlers never sleep and never touch the transport; the client asks the
:class:`~.RetryPolicy` for a decision and does the waiting itself.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests

from .failure import refused
from .interval import BackoffRetryIntervalCalculator, RetryIntervalCalculator

# X-RateLimit-Reset values above this are taken as Unix timestamps, not seconds.
_EPOCH_THRESHOLD = 1_000_000_000
_EPOCH_MS_THRESHOLD = 100_000_000_000


@dataclass(frozen=True)
class HttpRequest:
    """What the handlers may know about a request (never its body)."""

    method: str
    path: str
    description: str


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    headers: Mapping[str, str]
    code: object = None
    message: str | None = None


@dataclass
class RetryState:
    """Retry bookkeeping of a single call."""

    attempts: int = 0
    retries: int = 0
    waited: float = 0.0
    retries_by_reason: dict[str, int] = field(default_factory=dict)
    waited_by_reason: dict[str, float] = field(default_factory=dict)
    last_reason: str | None = None

    def record_retry(self, reason: str, wait: float) -> None:
        self.retries += 1
        self.waited += wait
        self.retries_by_reason[reason] = self.retries_by_reason.get(reason, 0) + 1
        self.waited_by_reason[reason] = self.waited_by_reason.get(reason, 0.0) + wait
        self.last_reason = reason


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        now = time.time() if now is None else now
        return max(0.0, when.timestamp() - now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def parse_ratelimit_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``X-RateLimit-Reset``: seconds until reset, or an epoch timestamp."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    if reset != reset or reset in (float("inf"), float("-inf")):
        return None
    if reset >= _EPOCH_THRESHOLD:
        if reset >= _EPOCH_MS_THRESHOLD:
            reset /= 1000.0
        now = time.time() if now is None else now
        return max(0.0, reset - now)
    return max(0.0, reset)


class RetryHandler:
    """Base handler. ``reason`` labels the retries it allows in stats and logs.

    ``max_total_wait``, when set, bounds the seconds waited for this handler's reason within
    one call, below the policy's budget for all reasons.
    """

    reason = "other"

    def __init__(
        self,
        interval_calculator: RetryIntervalCalculator | None = None,
        *,
        max_total_wait: float | None = None,
    ) -> None:
        self.interval_calculator = interval_calculator or BackoffRetryIntervalCalculator()
        self.max_total_wait = max_total_wait

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        raise NotImplementedError

    def wait_seconds(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> float:
        return self.interval_calculator.calculate_sleep_duration(
            state.retries_by_reason.get(self.reason, 0)
        )


class RateLimitErrorRetryHandler(RetryHandler):
    """429: honour ``Retry-After``, else ``X-RateLimit-Reset``, else backoff with jitter."""

    reason = "429"

    def __init__(
        self,
        interval_calculator: RetryIntervalCalculator | None = None,
        wall_clock: Callable[[], float] = time.time,
        *,
        max_total_wait: float | None = None,
    ) -> None:
        super().__init__(interval_calculator, max_total_wait=max_total_wait)
        self.wall_clock = wall_clock

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        return response is not None and response.status_code == 429

    def wait_seconds(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> float:
        if response is not None:
            headers = {k.lower(): v for k, v in response.headers.items()}
            now = self.wall_clock()
            wait = parse_retry_after(headers.get("retry-after"), now)
            if wait is None:
                wait = parse_ratelimit_reset(headers.get("x-ratelimit-reset"), now)
            if wait is not None:
                return wait
        return super().wait_seconds(state, request, response, error)


class ServerErrorRetryHandler(RetryHandler):
    """5xx answers (and 408 Request Timeout): backoff with jitter."""

    reason = "5xx"

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        return response is not None and (
            500 <= response.status_code <= 599 or response.status_code == 408
        )


class TimeoutErrorRetryHandler(RetryHandler):
    """Connect/read timeouts: backoff with jitter."""

    reason = "timeout"

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        return response is None and isinstance(error, requests.Timeout | TimeoutError)


class ConnectionRefusedRetryHandler(RetryHandler):
    """Nothing answers at the address (connection refused, unknown host name): a short budget.

    Waiting rarely cures these (a wrong ``api_url``, a proxy that is down), so a few seconds
    in all, where a reset or a timeout (a network hiccup) gets the policy's whole budget.
    """

    reason = "refused"

    def __init__(
        self,
        interval_calculator: RetryIntervalCalculator | None = None,
        *,
        max_total_wait: float | None = 4.0,
    ) -> None:
        super().__init__(interval_calculator, max_total_wait=max_total_wait)

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        return response is None and error is not None and refused(error)


class ConnectionErrorRetryHandler(RetryHandler):
    """Connection reset/dropped (and refused, without a :class:`ConnectionRefusedRetryHandler`
    before it): backoff with jitter."""

    reason = "connection"

    def can_retry(
        self,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None,
        error: Exception | None,
    ) -> bool:
        return response is None and isinstance(
            error,
            requests.ConnectionError | requests.exceptions.ChunkedEncodingError | ConnectionError,
        )
