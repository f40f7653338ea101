"""Tests of the Pinterest HTTP client package (pacing, retry policy, tokens, client)."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time

import pytest

from target_pinterest_audiences.pinterest import (
    PinterestApiError,
    PinterestAuthError,
    RateLimiter,
    RetryBudgetExhausted,
    RetryPolicy,
    TokenManager,
    WriteOutcomeUnknown,
)
from target_pinterest_audiences.pinterest.http_retry import (
    BackoffRetryIntervalCalculator,
    FullJitter,
    HttpRequest,
    HttpResponse,
    NoJitter,
    RetryState,
    parse_ratelimit_reset,
    parse_retry_after,
)

SECRETS = (
    "test-access-token",
    "test-client-secret",
    "test-refresh-token",
)


class FakeClock:
    """Monotonic clock + sleep that only moves when slept on (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


# --------------------------------------------------------------------------- pacing
def test_rate_limiter_allows_burst_then_waits_for_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert limiter.acquire() == 0
    assert clock.sleeps == []
    assert limiter.acquire() == pytest.approx(60.0)
    assert clock.sleeps == [pytest.approx(60.0)]


def test_rate_limiter_never_sleeps_with_room() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        assert limiter.acquire() == 0
        clock.now += 20.0  # 3 calls per 60 s exactly
    assert clock.sleeps == []


def test_rate_limiter_window_holds_for_random_arrivals() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    grants = []
    for _ in range(300):
        clock.now += rng.choice([0.0, 0.0, 0.5, 3.0, 11.0])
        limiter.acquire()
        grants.append(clock.now)
    for i, t in enumerate(grants):
        in_window = [g for g in grants[: i + 1] if g > t - 60.0]
        assert len(in_window) <= 10


def test_rate_limiter_pause_makes_everyone_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(12.5)
    assert limiter.acquire() == pytest.approx(12.5)
    assert limiter.acquire() == 0


def test_rate_limiter_thread_safe_real_clock() -> None:
    limiter = RateLimiter(5, period=0.3)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) == 16
    # any 5 consecutive grants... the 6th grant after grant i is at least one period later
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.3 - 0.02
    assert limiter.calls == 16


# ----------------------------------------------------------------- interval / jitter
def test_backoff_interval_without_jitter() -> None:
    calc = BackoffRetryIntervalCalculator(1.0, 2.0, 60.0, jitter=NoJitter())
    assert [calc.calculate_sleep_duration(i) for i in range(8)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert calc.calculate_sleep_duration(10_000) == 60


def test_full_jitter_is_seedable_and_bounded() -> None:
    a = BackoffRetryIntervalCalculator(jitter=FullJitter(seed=42))
    b = BackoffRetryIntervalCalculator(jitter=FullJitter(seed=42))
    seq_a = [a.calculate_sleep_duration(i) for i in range(10)]
    seq_b = [b.calculate_sleep_duration(i) for i in range(10)]
    assert seq_a == seq_b
    for i, wait in enumerate(seq_a):
        assert 0 <= wait <= min(60, 2**i)


# ------------------------------------------------------------------- header parsing
def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0


def test_parse_ratelimit_reset() -> None:
    now = 1_700_000_000.0
    assert parse_ratelimit_reset("30", now=now) == 30
    assert parse_ratelimit_reset(str(int(now) + 42), now=now) == pytest.approx(42)
    assert parse_ratelimit_reset(str(int(now * 1000) + 5000), now=now) == pytest.approx(5)
    assert parse_ratelimit_reset(str(int(now) - 10), now=now) == 0
    assert parse_ratelimit_reset("x", now=now) is None
    assert parse_ratelimit_reset(None) is None


# -------------------------------------------------------------------- retry policy
REQ = HttpRequest("PATCH", "/ad_accounts/1/customer_lists/643", "PATCH customer_lists/643")


def _resp(status: int, **headers: str) -> HttpResponse:
    return HttpResponse(status_code=status, headers=headers, code=status, message="m")


def test_policy_429_prefers_retry_after_then_ratelimit_reset() -> None:
    now = 1_700_000_000.0
    policy = RetryPolicy(seed=1, wall_clock=lambda: now)
    state = RetryState(attempts=1)
    d = policy.decide(state, REQ, _resp(429, **{"Retry-After": "9"}), None)
    assert d is not None and d.reason == "429" and d.wait == 9 and not d.exhausted
    d = policy.decide(state, REQ, _resp(429, **{"X-RateLimit-Reset": "12"}), None)
    assert d is not None and d.wait == 12
    d = policy.decide(state, REQ, _resp(429, **{"x-ratelimit-reset": str(int(now) + 20)}), None)
    assert d is not None and d.wait == pytest.approx(20)
    d = policy.decide(state, REQ, _resp(429), None)
    assert d is not None and 0 <= d.wait <= 1


def test_policy_5xx_connection_timeout_and_non_retryable() -> None:
    import requests

    policy = RetryPolicy(seed=3)
    state = RetryState(attempts=1)
    for status in (500, 502, 503, 408):
        d = policy.decide(state, REQ, _resp(status), None)
        assert d is not None and d.reason == "5xx"
    d = policy.decide(state, REQ, None, requests.ConnectionError("reset"))
    assert d is not None and d.reason == "connection"
    d = policy.decide(state, REQ, None, requests.ReadTimeout("slow"))
    assert d is not None and d.reason == "timeout"
    assert policy.decide(state, REQ, _resp(400), None) is None
    assert policy.decide(state, REQ, _resp(404), None) is None


def test_policy_budget() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_wait=100, seed=0)
    state = RetryState(attempts=2)
    d = policy.decide(state, REQ, _resp(503), None)
    assert d is not None and not d.exhausted
    state.attempts = 3
    d = policy.decide(state, REQ, _resp(503), None)
    assert d is not None and d.exhausted
    state = RetryState(attempts=1, waited=95)
    d = policy.decide(state, REQ, _resp(429, **{"Retry-After": "10"}), None)
    assert d is not None and d.exhausted


# -------------------------------------------------------------------- error messages
def test_api_error_message() -> None:
    err = PinterestApiError(
        "PATCH customer_lists/643 (ADD, 3 records)", 404, 2, "Not found", "Check the segment_id"
    )
    text = str(err)
    for part in ("PATCH customer_lists/643 (ADD, 3 records)", "404", "code 2", "Not found"):
        assert part in text
    assert "segment_id" in text
    assert (err.status, err.code, err.api_message) == (404, 2, "Not found")


def test_budget_error_message() -> None:
    err = RetryBudgetExhausted(
        "PATCH customer_lists/643 (ADD, 10000 records)",
        attempts=8,
        waited=300.0,
        last_reason="5xx",
        status=503,
        code=8,
        api_message="Service unavailable",
    )
    text = str(err)
    for part in ("PATCH customer_lists/643 (ADD, 10000 records)", "503", "code 8", "unavailable"):
        assert part in text
    assert "8 attempt" in text


def test_write_outcome_unknown_and_auth_error_messages() -> None:
    err = WriteOutcomeUnknown("POST customer_lists (EMAIL, 5 records)", "read timeout")
    assert "look it up" in str(err)
    auth = PinterestAuthError("refused", settings=("client_id", "client_secret"), status=401)
    assert "client_id" in str(auth) and "client_secret" in str(auth) and "401" in str(auth)


def test_token_manager_repr_hides_secrets(tmp_path) -> None:
    tm = TokenManager(
        "http://x/v5",
        access_token="test-access-token",
        refresh_token="test-refresh-token",
        client_id="test-client-id",
        client_secret="test-client-secret",
        token_dir=tmp_path,
    )
    for text in (repr(tm), str(tm)):
        for secret in (*SECRETS, "test-client-id"):
            assert secret not in text


def test_token_manager_without_any_credentials() -> None:
    tm = TokenManager("http://127.0.0.1:9/v5")
    with pytest.raises(PinterestAuthError) as info:
        tm.get()
    assert "access_token" in str(info.value)


def test_logging_is_quiet_about_unused_module() -> None:
    # the package must not configure logging handlers on import
    assert not logging.getLogger("target_pinterest_audiences.pinterest.client").handlers
