"""Tests of the Pinterest HTTP client package (pacing, retry policy, tokens, client)."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import threading
import time
from typing import Any

import pytest

from target_pinterest_audiences.pinterest import (
    ClientStats,
    Pacer,
    PinterestApiError,
    PinterestAuthError,
    PinterestClient,
    PinterestScopeError,
    RateLimiter,
    RetryBudgetExhausted,
    RetryPolicy,
    RunStopped,
    TokenManager,
    WriteOutcomeUnknown,
)
from target_pinterest_audiences.pinterest.errors import Subject, refusal_hint
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
from tests.pinterest_support import (
    ACCT,
    CLIENT_ID,
    SECRETS,
    FakeClock,
    PinterestEmulator,
    assert_no_secrets,
    blob,
    digest,
    hexes,
    make_client,
    members_of,
    needs_emulator,
)
from tests.pinterest_support import emu as emu  # the fixture, re-exported for pytest


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


# =========================================================================
# Client tests against the real local HTTP emulator
# =========================================================================
@needs_emulator
def test_paging_lists_and_audiences(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    ids = []
    for i in range(5):
        created = client.create_customer_list(f"list {i}", "EMAIL", blob(3, i * 10))
        assert isinstance(created["id"], str)
        ids.append(created["id"])
    lists = list(client.iter_customer_lists())
    assert sorted(item["id"] for item in lists) == sorted(ids)
    list_gets = [r for r in emu.requests if r.method == "GET" and r.path.endswith("customer_lists")]
    assert len(list_gets) >= 3  # page_size=2 in the emulator: >2 pages followed
    assert [item["id"] for item in client.find_customer_lists_by_name("list 3")] == [ids[3]]
    assert client.find_customer_lists_by_name("list") == []
    assert client.get_customer_list(ids[0])["name"] == "list 0"

    audiences = [client.create_audience(f"aud {i}", ids[i], description="d") for i in range(5)]
    assert all(isinstance(a["id"], str) for a in audiences)
    assert sorted(a["id"] for a in client.iter_audiences()) == sorted(a["id"] for a in audiences)
    found = client.find_customer_list_audience(ids[2])
    assert found is not None and found["id"] == audiences[2]["id"]
    again = client.create_audience("aud 2 bis", ids[2])
    found = client.find_customer_list_audience(ids[2])
    assert found is not None and found["id"] == again["id"]  # most recent wins
    assert client.stats.reads >= 6 and client.stats.writes == 11


@needs_emulator
def test_create_and_update_membership(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    created = client.create_customer_list("members", "EMAIL", blob(4))
    list_id = created["id"]
    assert members_of(emu, list_id) == hexes(blob(4))
    client.update_customer_list(list_id, "ADD", blob(3, 10))
    client.update_customer_list(list_id, "REMOVE", blob(2))
    assert members_of(emu, list_id) == hexes(blob(2, 2)) | hexes(blob(3, 10))
    with pytest.raises(ValueError):
        client.update_customer_list(list_id, "DELETE", blob(1))  # type: ignore[arg-type]


@needs_emulator
def test_429_retry_after_is_honoured(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path)
    list_id = client.create_customer_list("rl", "EMAIL", blob(2))["id"]
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=429, retry_after=7)
    client.update_customer_list(list_id, "ADD", blob(2, 5))
    assert clock.sleeps == [7]
    assert client.stats.retries_by_reason["429"] == 1
    assert client.stats.retry_wait_seconds == 7
    assert members_of(emu, list_id) == hexes(blob(2)) | hexes(blob(2, 5))
    # X-RateLimit-Reset (seconds until reset) when there is no Retry-After
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=429, ratelimit_reset=11)
    client.update_customer_list(list_id, "ADD", blob(1, 20))
    assert clock.sleeps[-1] == pytest.approx(11, abs=1)
    # the limiter was paused until the reset time: everyone waited
    assert client.write_limiter.paused_until <= clock()


@needs_emulator
def test_5xx_then_success(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path)
    list_id = client.create_customer_list("flaky", "EMAIL", blob(2))["id"]
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=500)
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=503, skip=1)
    client.update_customer_list(list_id, "ADD", blob(2, 2))
    assert [r.status for r in emu.requests if r.method == "PATCH"] == [500, 503, 200]
    assert client.stats.retries_by_reason["5xx"] == 2
    assert len(clock.sleeps) == 2 and all(0 <= s <= 2 for s in clock.sleeps)
    emu.add_fault("status", method="GET", path=r"customer_lists", status=503)
    assert len(list(client.iter_customer_lists())) == 1
    assert members_of(emu, list_id) == hexes(blob(4))


@needs_emulator
@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
def test_dropped_patch_is_retried(emu, tmp_path, kind) -> None:
    client, _, _ = make_client(emu, tmp_path)
    list_id = client.create_customer_list("dropped", "EMAIL", blob(2))["id"]
    emu.add_fault(kind, method="PATCH", path=r"customer_lists")
    client.update_customer_list(list_id, "ADD", blob(3, 2))
    assert client.stats.retries_by_reason["connection"] == 1
    assert members_of(emu, list_id) == hexes(blob(5))
    emu.add_fault(kind, method="PATCH", path=r"customer_lists")
    client.update_customer_list(list_id, "REMOVE", blob(1))
    assert members_of(emu, list_id) == hexes(blob(4, 1))


@needs_emulator
def test_dropped_create_raises_write_outcome_unknown(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    emu.add_fault("drop_after", method="POST", path=r"customer_lists")
    with pytest.raises(WriteOutcomeUnknown) as info:
        client.create_customer_list("maybe", "EMAIL", blob(3))
    assert "POST customer_lists" in str(info.value)
    assert_no_secrets([str(info.value)])
    # the create did happen: the caller looks up by name before creating again
    assert len(client.find_customer_lists_by_name("maybe")) == 1
    emu.add_fault("drop_before", method="POST", path=r"audiences")
    with pytest.raises(WriteOutcomeUnknown):
        client.create_audience("maybe aud", client.find_customer_lists_by_name("maybe")[0]["id"])
    assert emu.audiences(ACCT) == [] or len(list(emu.audiences(ACCT))) == 0


@needs_emulator
def test_401_refresh_persists_rotated_token(emu, tmp_path) -> None:
    import json
    import os
    import stat

    client, _tokens, _ = make_client(emu, tmp_path)
    list_id = client.create_customer_list("auth", "EMAIL", blob(2))["id"]
    emu.add_fault("expire_token")  # the token used by the next call expires after it
    client.get_customer_list(list_id)
    assert client.stats.token_refreshes == 0
    client.update_customer_list(list_id, "ADD", blob(1, 9))
    assert [r.status for r in emu.requests if r.method == "PATCH"] == [401, 200]
    assert client.stats.token_refreshes == 1
    assert members_of(emu, list_id) == hexes(blob(2)) | hexes(digest(9))
    token_file = tmp_path / "tokens" / "refresh_token.json"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(token_file.parent).st_mode) == 0o700
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] != "test-refresh-token"
    assert set(stored) == {
        "refresh_token",
        "refresh_token_expires_at",
        "issued_at",  # the newest of several stores wins (issue 10.2)
        "configured_refresh_token_sha256",
    }
    # next run: the stored (rotated) refresh token is used
    client2, tokens2, _ = make_client(emu, tmp_path, access_token=None)
    assert tokens2.using_stored_refresh_token
    assert client2.get_customer_list(list_id)["id"] == list_id
    assert tokens2.using_stored_refresh_token  # it was accepted, no fallback
    # a user who pastes a new refresh token is not overridden by the old file
    tokens3 = TokenManager(
        emu.url,
        refresh_token="another-refresh-token",
        client_id=CLIENT_ID,
        client_secret="test-client-secret",
        token_dir=tmp_path / "tokens",
    )
    assert not tokens3.using_stored_refresh_token


@needs_emulator
def test_refused_stored_token_falls_back_to_configured(emu, tmp_path, caplog) -> None:
    import json

    token_dir = tmp_path / "tokens"
    token_dir.mkdir(mode=0o700)
    (token_dir / "refresh_token.json").write_text(
        json.dumps(
            {
                "refresh_token": "stale-refresh-token",
                "refresh_token_expires_at": None,
                "configured_refresh_token_sha256": hashlib.sha256(
                    b"test-refresh-token"
                ).hexdigest(),
            }
        )
    )
    client, tokens, _ = make_client(emu, tmp_path, access_token=None)
    assert tokens.using_stored_refresh_token
    with caplog.at_level(logging.WARNING):
        assert list(client.iter_customer_lists()) == []
    assert not tokens.using_stored_refresh_token
    assert any("falling back" in r.getMessage() for r in caplog.records)
    assert_no_secrets(r.getMessage() for r in caplog.records)
    assert "stale-refresh-token" not in caplog.text


@needs_emulator
def test_401_without_refresh_credentials(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path, access_token="wrong-token", refresh=False)
    with pytest.raises(PinterestAuthError) as info:
        list(client.iter_customer_lists())
    assert "access_token" in str(info.value)
    assert "wrong-token" not in str(info.value)


@needs_emulator
def test_token_endpoint_refusal_names_settings(emu, tmp_path) -> None:
    clock = FakeClock()
    tokens = TokenManager(
        emu.url,
        refresh_token="test-refresh-token",
        client_id=CLIENT_ID,
        client_secret="not-the-secret",
        sleep=clock.sleep,
    )
    with pytest.raises(PinterestAuthError) as info:
        tokens.get()
    text = str(info.value)
    assert "client_secret" in text and "client_id" in text
    assert "not-the-secret" not in text and "test-refresh-token" not in text


@needs_emulator
def test_403_and_404_fail_at_once_with_hints(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path)
    with pytest.raises(PinterestApiError) as info:
        client.get_customer_list("999999")
    assert info.value.status == 404
    assert "segment_id" in str(info.value)
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=403)
    list_id = client.create_customer_list("forbidden", "EMAIL", blob(1))["id"]
    with pytest.raises(PinterestScopeError) as scope_info:  # was a PinterestApiError (issue 9.6)
        client.update_customer_list(list_id, "ADD", blob(1, 1))
    assert scope_info.value.status == 403
    assert "ads:write" in str(scope_info.value) and "ad_account_id" in str(scope_info.value)
    assert clock.sleeps == []
    assert client.stats.retries == 0
    assert_no_secrets([str(scope_info.value)])


@needs_emulator
def test_retry_budget_exhausted_message(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path, max_attempts=3)
    list_id = client.create_customer_list("budget", "EMAIL", blob(1))["id"]
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=503, times=5)
    with pytest.raises(RetryBudgetExhausted) as info:
        client.update_customer_list(list_id, "ADD", blob(10, 1))
    err = info.value
    assert err.attempts == 3 and err.status == 503
    text = str(err)
    assert f"PATCH customer_lists/{list_id} (ADD, 10 records)" in text
    assert "503" in text
    assert len(clock.sleeps) == 2
    assert_no_secrets([text])


@needs_emulator
def test_concurrent_updates(emu, tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client, _, _ = make_client(emu, tmp_path)
    list_id = client.create_customer_list("parallel", "EMAIL", blob(1))["id"]
    emu.add_fault("latency", method="PATCH", path=r"customer_lists", times=4, seconds=0.2)
    emu.add_fault("expire_token")
    client.get_customer_list(list_id)
    batches = [blob(5, 100 + 5 * i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: client.update_customer_list(list_id, "ADD", b), batches))
    expected = hexes(blob(1)).union(*map(hexes, batches))
    assert members_of(emu, list_id) == expected
    assert client.stats.writes >= 9
    assert client.stats.token_refreshes == 1
    assert client.transport.open_sessions > 1
    client.close()


@needs_emulator
def test_no_secret_or_records_in_logs(emu, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client, _, _ = make_client(emu, tmp_path, max_attempts=2)
    list_id = client.create_customer_list("logs", "EMAIL", blob(3))["id"]
    emu.add_fault("expire_token")
    client.get_customer_list(list_id)
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=429, retry_after=1)
    client.update_customer_list(list_id, "ADD", blob(2, 3))
    emu.add_fault("drop_after", method="PATCH", path=r"customer_lists")
    client.update_customer_list(list_id, "REMOVE", blob(1))
    errors = []
    emu.add_fault("status", method="PATCH", path=r"customer_lists", status=500, times=3)
    with pytest.raises(RetryBudgetExhausted) as info:
        client.update_customer_list(list_id, "ADD", blob(2, 50))
    errors.append(str(info.value))
    emu.add_fault("drop_after", method="POST", path=r"customer_lists")
    with pytest.raises(WriteOutcomeUnknown) as info2:
        client.create_customer_list("logs 2", "EMAIL", blob(2, 70))
    errors.append(str(info2.value))
    errors.append(repr(client))
    assert caplog.records
    assert_no_secrets([r.getMessage() for r in caplog.records])
    assert_no_secrets([caplog.text, *errors])


@needs_emulator
def test_refresh_token_expiry_warning(tmp_path, caplog) -> None:
    with PinterestEmulator(page_size=2, refresh_token_expires_in=5 * 86400) as server:
        client, tokens, _ = make_client(server, tmp_path, access_token=None)
        with caplog.at_level(logging.DEBUG):
            assert list(client.iter_customer_lists()) == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("re-authorize" in r.getMessage() for r in warnings)
        assert_no_secrets([caplog.text])
        assert tokens._refresh_token not in caplog.text
        assert server.spec_violations == []


@needs_emulator
def test_read_timeouts(emu, tmp_path) -> None:
    clock = FakeClock()
    tokens = TokenManager(emu.url, access_token="test-access-token")
    policy = RetryPolicy(seed=5, sleep=clock.sleep, clock=clock)
    client = PinterestClient(emu.url, ACCT, tokens, retry=policy, read_timeout=0.3)
    list_id = client.create_customer_list("slow", "EMAIL", blob(2))["id"]
    emu.add_fault("latency", method="PATCH", path=r"customer_lists", seconds=1.0)
    client.update_customer_list(list_id, "ADD", blob(2, 2))
    assert client.stats.retries_by_reason["timeout"] == 1
    assert members_of(emu, list_id) == hexes(blob(4))
    emu.add_fault("latency", method="POST", path=r"customer_lists", seconds=1.0)
    with pytest.raises(WriteOutcomeUnknown) as info:
        client.create_customer_list("slow 2", "EMAIL", blob(2, 10))
    assert "read timeout" in str(info.value)
    client.close()


def test_hints_name_the_setting() -> None:
    tokens = TokenManager("http://127.0.0.1:9/v5", access_token="test-access-token")
    client = PinterestClient("http://127.0.0.1:9/v5", "123", tokens)

    def hint(status: int, list_id: str | None) -> str:
        subject = Subject("customer list", list_id) if list_id else None
        return (
            refusal_hint(status, ad_account_id="123", api_url=client.api_url, subject=subject) or ""
        )

    assert "ad_account_id" in hint(404, None)
    assert "segment_id" in hint(404, "643")
    assert "request" in hint(400, None)
    assert "test-access-token" not in repr(client)


def test_connection_refused_create_is_retried_not_unknown() -> None:
    # nothing listens on port 9: the request was never sent, so a create is safe to retry
    clock = FakeClock()
    tokens = TokenManager("http://127.0.0.1:9/v5", access_token="test-access-token")
    policy = RetryPolicy(max_attempts=3, seed=1, sleep=clock.sleep, clock=clock)
    client = PinterestClient("http://127.0.0.1:9/v5", "123", tokens, retry=policy)
    with pytest.raises(RetryBudgetExhausted) as info:
        client.create_customer_list("x", "EMAIL", digest(1))
    assert info.value.last_reason == "refused"  # its own reason and budget (issue 11.7)
    assert "POST customer_lists (EMAIL, 1 records)" in str(info.value)
    assert len(clock.sleeps) == 2


def test_rate_period_is_a_constructor_argument() -> None:
    tokens = TokenManager("http://127.0.0.1:9/v5", access_token="test-access-token")
    client = PinterestClient("http://127.0.0.1:9/v5", "123", tokens)
    assert client.write_limiter.period == client.read_limiter.period == 60.5
    fast = PinterestClient("http://127.0.0.1:9/v5", "123", tokens, rate_period=3)
    assert fast.write_limiter.period == fast.read_limiter.period == 3


@needs_emulator
def test_close_closes_sessions_and_the_token_manager(emu, tmp_path) -> None:
    client, tokens, _ = make_client(emu, tmp_path, access_token=None)
    with client:
        assert list(client.iter_customer_lists()) == []  # refreshes first: both sessions open
        assert client.transport.open_sessions == 1 and tokens._session is not None
    assert client.transport.open_sessions == 0
    assert tokens._session is None


def test_members_travel_as_blobs_of_digests() -> None:
    tokens = TokenManager("http://127.0.0.1:9/v5", access_token="test-access-token")
    client = PinterestClient("http://127.0.0.1:9/v5", "123", tokens)
    for bad in (b"", b"x" * 33, [digest(1)]):
        with pytest.raises(ValueError):
            client.update_customer_list("643", "ADD", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.create_customer_list("l", "EMAIL", bad)  # type: ignore[arg-type]


def test_stopping_the_pacer_ends_waiting_and_later_calls_at_once() -> None:
    pacer = Pacer(writes_per_minute=1, reads_per_minute=1, period=60)
    pacer.writes.acquire()  # the minute's one write: the next waits a minute
    raised: list[BaseException] = []

    def waiting() -> None:
        try:
            pacer.writes.acquire()
        except RunStopped as error:
            raised.append(error)

    thread = threading.Thread(target=waiting)
    started = time.monotonic()
    thread.start()
    time.sleep(0.1)
    pacer.stop("Pinterest's write quota is used up")
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert [str(e) for e in raised] == ["Pinterest's write quota is used up"]
    with pytest.raises(RunStopped):
        pacer.reads.acquire()  # the reads too, though they had room


def test_client_views_share_the_pacer_and_count_their_own_calls(emu: Any) -> None:
    other = "549755885176"
    emu.configure(ad_accounts=[ACCT, other])  # the token may use both
    client = PinterestClient(emu.url, ACCT, TokenManager(emu.url, access_token="test-access-token"))
    mine, theirs = ClientStats(), ClientStats()
    a = client.view(stats=mine)
    b = client.view(ad_account_id=other, account_setting="streams.uk.ad_account_id", stats=theirs)
    assert a.pacer is b.pacer is client.pacer
    a.check_access()
    b.check_access()
    b.check_access()
    assert (mine.reads, theirs.reads, client.stats.reads) == (1, 2, 3)
    assert [r.path for r in emu.requests][-1] == f"/v5/ad_accounts/{other}/customer_lists"
    client.close()
