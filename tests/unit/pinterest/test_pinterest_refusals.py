"""How the client meets Pinterest's refusals (issues 9 and 11), against the real emulator:
missing scopes, an exhausted quota, 413, a 404 for the account, hosts that refuse connections,
and the endpoints the sync layer needs (audience get/update, the access check)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest
import requests

from target_pinterest_audiences.pinterest import (
    PinterestApiError,
    PinterestAuthError,
    PinterestClient,
    PinterestError,
    PinterestScopeError,
    QuotaExhausted,
    RequestTooLarge,
    RetryBudgetExhausted,
    RetryPolicy,
    TokenManager,
    WriteOutcomeUnknown,
    api_url_problem,
)
from tests.pinterest_support import (
    ACCT,
    FakeClock,
    PinterestEmulator,
    assert_no_secrets,
    blob,
    make_client,
    needs_emulator,
)
from tests.pinterest_support import emu as emu  # the fixture, re-exported for pytest

pytestmark = needs_emulator


def _calls(emu, method: str, path_end: str) -> list:
    return [r for r in emu.requests if r.method == method and r.path.endswith(path_end)]


# ------------------------------------------------------------------- missing scopes
def test_401_code_3_names_the_scope_and_never_refreshes(emu, tmp_path) -> None:
    client, tokens, clock = make_client(emu, tmp_path)
    list_id = client.create_customer_list("scopes", "EMAIL", blob(2))["id"]
    emu.add_fault(
        "status", method="PATCH", path="customer_lists", status=401, code=3, times=None,
        message="Authorization failed: missing scopes",
    )  # fmt: skip
    with pytest.raises(PinterestScopeError) as info:
        client.update_customer_list(list_id, "ADD", blob(1, 5))
    error = info.value
    assert isinstance(error, PinterestAuthError)
    assert (error.status, error.code, error.scope) == (401, 3, "ads:write")
    text = str(error)
    assert f"PATCH customer_lists/{list_id} (ADD, 1 records)" in text
    assert "lacks the ads:write scope" in text and "Re-authorize the app" in text
    assert len(_calls(emu, "PATCH", list_id)) == 1  # no refresh-and-retry loop
    assert _calls(emu, "POST", "/oauth/token") == []
    assert tokens.refresh_count == 0 and client.stats.auth_retries == 0
    assert clock.sleeps == []
    assert_no_secrets([text])
    # a read names the read scope
    emu.add_fault("status", method="GET", path="customer_lists", status=401, code=3)
    with pytest.raises(PinterestScopeError) as info:
        client.get_customer_list(list_id)
    assert info.value.scope == "ads:read" and "ads:read scope" in str(info.value)


def test_403_not_permitted_is_a_scope_error(emu, tmp_path) -> None:
    client, tokens, _ = make_client(emu, tmp_path)
    emu.add_fault(
        "status", method="GET", path="audiences", status=403, code=29,
        message="You are not permitted to access that resource.",
    )  # fmt: skip
    with pytest.raises(PinterestScopeError) as info:
        list(client.iter_audiences())
    text = str(info.value)
    assert "ads:read" in text and ACCT in text and "check ad_account_id" in text
    assert "resource. The token may not use" in text  # one sentence after Pinterest's, no ".."
    assert info.value.settings == ("ad_account_id", "access_token", "refresh_token")
    assert tokens.refresh_count == 0 and client.stats.retries == 0


OTHER_ACCOUNT = "549755885176"  # not one the emulator's tokens may use


@pytest.mark.parametrize("refusal", ["forbidden", "not_found"])
def test_an_ad_account_the_token_may_not_use_names_the_setting_that_gave_it(
    emu, tmp_path, refusal: str
) -> None:
    # The emulator refuses it as Pinterest does (403 code 29, or 404 code 2: which one is not
    # known); the message names the setting the caller says gave the account.
    emu.configure(ad_account_refusal=refusal)
    _, tokens, clock = make_client(emu, tmp_path)
    policy = RetryPolicy(seed=1, sleep=clock.sleep, clock=clock)
    setting = "streams.vip.ad_account_id"
    client = PinterestClient(emu.url, OTHER_ACCOUNT, tokens, retry=policy, account_setting=setting)
    for call in (client.check_access, lambda: client.get_customer_list("549755813889")):
        with pytest.raises(PinterestError) as info:
            call()
        text = str(info.value)
        assert f"heck {setting}" in text and OTHER_ACCOUNT in text and "Ads Manager URL" in text
        assert "ad_account_id" not in text.replace(setting, "")  # only the setting named
        assert isinstance(
            info.value, PinterestScopeError if refusal == "forbidden" else PinterestApiError
        )
    assert [r.status for r in emu.requests] == [403 if refusal == "forbidden" else 404] * 2
    assert tokens.refresh_count == 0 and clock.sleeps == []
    # without a setting named, it is the top-level one
    default = PinterestClient(emu.url, OTHER_ACCOUNT, tokens, retry=policy)
    with pytest.raises(PinterestError, match=r"[Cc]heck ad_account_id \((549755885176|the digits)"):
        default.check_access()


# ------------------------------------------------------------------- exhausted quota
RESET = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NOW = RESET.timestamp() - 18.6 * 3600  # 18.6 hours before the reset


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _daily_quota_fault(emu, method: str, path: str) -> None:
    emu.add_fault(
        "status", method=method, path=path, status=429, code=8,
        message="Rate limit exceeded", ratelimit_reset=int(RESET.timestamp()),
    )  # fmt: skip


def test_quota_exhausted_says_when_it_resets_and_stops_every_write(emu, tmp_path) -> None:
    wall = WallClock(NOW)
    client, _, clock = make_client(emu, tmp_path, wall_clock=wall)
    list_id = client.create_customer_list("quota", "EMAIL", blob(2))["id"]
    _daily_quota_fault(emu, "PATCH", "customer_lists")
    with pytest.raises(QuotaExhausted) as info:
        client.update_customer_list(list_id, "ADD", blob(1, 5))
    error = info.value
    assert str(error).startswith(
        "Pinterest's write quota is used up; it resets in 18.6 hours, at 2026-12-03 12:00 UTC"
    )
    assert f"PATCH customer_lists/{list_id} (ADD, 1 records)" in str(error)
    assert "67000" not in str(error) and "retry budget" not in str(error)
    assert error.resets_at == RESET and error.category == "write"
    assert error.wait_seconds == pytest.approx(18.6 * 3600)
    assert not isinstance(error, RetryBudgetExhausted)
    assert clock.sleeps == []  # did not wait into the wall
    patches = len(_calls(emu, "PATCH", list_id))

    # every later write of this client, from any thread, fails at once without a request
    raised: list[BaseException] = []

    def other_thread() -> None:
        try:
            client.create_customer_list("quota 2", "EMAIL", blob(1, 9))
        except BaseException as exc:  # handed to the test thread
            raised.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(raised) == 1 and isinstance(raised[0], QuotaExhausted)
    assert raised[0].resets_at == RESET
    assert "POST customer_lists (EMAIL, 1 records) was not sent" in str(raised[0])
    with pytest.raises(QuotaExhausted):
        client.update_customer_list(list_id, "REMOVE", blob(1))
    assert len(_calls(emu, "PATCH", list_id)) == patches
    assert len(_calls(emu, "POST", "customer_lists")) == 1

    # reads have their own quota: they go on
    assert client.get_customer_list(list_id)["id"] == list_id
    # after the reset, writes go through again
    wall.now = RESET.timestamp() + 1
    client.update_customer_list(list_id, "ADD", blob(1, 5))
    assert _calls(emu, "PATCH", list_id)[-1].status == 200


def test_a_retrying_call_stops_when_another_call_finds_the_quota_used_up(emu, tmp_path) -> None:
    """A call waiting to retry (a 503) sends nothing more once the quota is known used up."""
    client, _, clock = make_client(emu, tmp_path, wall_clock=WallClock(NOW))
    list_id = client.create_customer_list("in flight", "EMAIL", blob(2))["id"]
    emu.add_fault("status", method="PATCH", path="customer_lists", status=503)
    tripped: list[BaseException] = []
    plain_sleep = clock.sleep

    def sleep_while_another_call_hits_the_quota(seconds: float) -> None:
        plain_sleep(seconds)
        if not tripped:
            _daily_quota_fault(emu, "POST", "audiences")
            with pytest.raises(QuotaExhausted) as info:
                client.create_audience("aud", list_id)
            tripped.append(info.value)

    client.retry.sleep = sleep_while_another_call_hits_the_quota
    with pytest.raises(QuotaExhausted) as info:
        client.update_customer_list(list_id, "ADD", blob(1, 5))
    assert tripped and "was not sent" in str(info.value)
    assert [r.status for r in _calls(emu, "PATCH", list_id)] == [503]


def test_a_short_rate_limit_is_still_waited_out(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path, wall_clock=WallClock(NOW))
    list_id = client.create_customer_list("short", "EMAIL", blob(2))["id"]
    emu.add_fault("status", method="PATCH", path="customer_lists", status=429, ratelimit_reset=30)
    client.update_customer_list(list_id, "ADD", blob(1, 5))
    assert clock.sleeps == [pytest.approx(30)]


# ---------------------------------------------------------------------------- 413
def test_413_raises_request_too_large_at_once(emu, tmp_path) -> None:
    client, _, clock = make_client(emu, tmp_path)
    list_id = client.create_customer_list("big", "EMAIL", blob(2))["id"]
    emu.add_fault(
        "status", method="PATCH", path="customer_lists", status=413, code=413,
        message="Request entity too large",
    )  # fmt: skip
    with pytest.raises(RequestTooLarge) as info:
        client.update_customer_list(list_id, "ADD", blob(40, 10))
    error = info.value
    assert isinstance(error, PinterestApiError) and error.status == 413
    assert "too large for Pinterest" in str(error)
    assert f"PATCH customer_lists/{list_id} (ADD, 40 records)" in str(error)
    assert len(_calls(emu, "PATCH", list_id)) == 1 and clock.sleeps == []
    emu.add_fault("status", method="POST", path="customer_lists", status=413)
    with pytest.raises(RequestTooLarge):
        client.create_customer_list("big 2", "EMAIL", blob(40, 10))
    assert_no_secrets([str(error)])


# ------------------------------------------------------------------ 404 on the account
def test_account_404_names_ad_account_id_and_api_url(tmp_path) -> None:
    with PinterestEmulator() as server:  # its own: the wrong URL is a spec violation there
        client, _, _ = make_client(server, tmp_path, api_url=server.root_url)
        with pytest.raises(PinterestApiError) as info:
            client.check_access()
    text = str(info.value)
    assert info.value.status == 404
    assert f"ad_account_id ({ACCT})" in text and f"api_url ({server.root_url})" in text
    assert "should end in /v5" in text and "https://api.pinterest.com/v5" in text
    assert "does not end in a version path" in text


def test_account_404_at_the_right_url_still_names_both(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    emu.add_fault("status", method="GET", path="customer_lists", status=404, code=2)
    with pytest.raises(PinterestApiError) as info:
        list(client.iter_customer_lists())
    text = str(info.value)
    assert "ad_account_id" in text and f"api_url ({emu.url})" in text
    assert "does not end in a version path" not in text


def test_api_url_problem() -> None:
    for good in (
        "https://api.pinterest.com/v5",
        "https://api.pinterest.com/v5/",
        "http://127.0.0.1:8765/v5",
        "https://proxy.example/pinterest/v6",
    ):
        assert api_url_problem(good) is None, good
    for bad in ("https://api.pinterest.com", "https://api.pinterest.com/", "http://h:1/v5/x"):
        warning = api_url_problem(bad)
        assert warning is not None and "/v5" in warning and "version path" in warning
    hidden = api_url_problem("https://user:hunter2@proxy.example/?key=secret")
    assert hidden is not None and "hunter2" not in hidden and "secret" not in hidden


# ------------------------------------------------------------ refused connections
def _closed_port_client(
    url: str = "http://127.0.0.1:9/v5",
) -> tuple[PinterestClient, FakeClock]:
    clock = FakeClock()
    tokens = TokenManager(url, access_token="test-access-token")
    policy = RetryPolicy(seed=1, sleep=clock.sleep, clock=clock)  # the default budget
    return PinterestClient(url, ACCT, tokens, retry=policy, connect_timeout=2), clock


def test_a_refused_connection_gets_a_short_budget_and_names_host_and_port() -> None:
    client, clock = _closed_port_client()
    with pytest.raises(RetryBudgetExhausted) as info:
        client.check_access()
    text = str(info.value)
    assert "could not connect to 127.0.0.1:9: connection refused" in text
    assert info.value.last_reason == "refused" and "check api_url" in text
    assert 0 < sum(clock.sleeps) <= 4.0  # a few seconds in all, not minutes
    assert client.stats.retries_by_reason["refused"] == len(clock.sleeps)


def test_an_unknown_host_name_gets_the_short_budget() -> None:
    client, clock = _closed_port_client("https://no-such-host.invalid/v5")
    with pytest.raises(RetryBudgetExhausted) as info:
        client.check_access()
    assert "could not connect to no-such-host.invalid:443" in str(info.value)
    assert info.value.last_reason == "refused" and sum(clock.sleeps) <= 4.0


def test_a_reset_connection_keeps_the_long_budget(emu, tmp_path, caplog) -> None:
    client, _, clock = make_client(emu, tmp_path)
    list_id = client.create_customer_list("resets", "EMAIL", blob(2))["id"]
    emu.add_fault("drop_before", method="PATCH", path="customer_lists", times=None)
    with caplog.at_level(logging.WARNING), pytest.raises(RetryBudgetExhausted) as info:
        client.update_customer_list(list_id, "ADD", blob(1, 5))
    assert info.value.attempts == 8 and info.value.last_reason == "connection"
    assert sum(clock.sleeps) > 4.0
    host_port = emu.url.split("//")[1].split("/")[0]
    assert host_port in str(info.value)
    assert all(host_port in r.getMessage() for r in caplog.records if "retry" in r.getMessage())


def test_a_lost_create_names_host_and_port(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    emu.add_fault("drop_after", method="POST", path="customer_lists")
    with pytest.raises(WriteOutcomeUnknown) as info:
        client.create_customer_list("lost", "EMAIL", blob(1))
    host_port = emu.url.split("//")[1].split("/")[0]
    assert f"connection to {host_port} was" in str(info.value)  # reset, or closed


# ------------------------------------------------------------------- new endpoints
def test_get_and_update_audience(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    list_id = client.create_customer_list("aud list", "EMAIL", blob(2))["id"]
    created = client.create_audience("Old name", list_id, description="old")
    audience_id = created["id"]
    assert client.get_audience(audience_id)["name"] == "Old name"
    updated = client.update_audience(audience_id, name="New name")
    assert updated["name"] == "New name" and updated["description"] == "old"
    patch = _calls(emu, "PATCH", f"/audiences/{audience_id}")[-1]
    assert patch.body == {"operation_type": "UPDATE", "name": "New name"}
    client.update_audience(audience_id, description="new")
    assert _calls(emu, "PATCH", f"/audiences/{audience_id}")[-1].body == {
        "operation_type": "UPDATE",
        "description": "new",
    }
    assert client.get_audience(audience_id)["description"] == "new"
    with pytest.raises(ValueError):
        client.update_audience(audience_id)
    with pytest.raises(PinterestApiError) as info:
        client.get_audience("999999")
    assert info.value.status == 404 and "audience id 999999" in str(info.value)


def test_find_customer_list_audience_skips_removed(emu, tmp_path) -> None:
    client, tokens, _ = make_client(emu, tmp_path)
    list_id = client.create_customer_list("removed", "EMAIL", blob(2))["id"]
    older = client.create_audience("older", list_id)["id"]
    newer = client.create_audience("newer", list_id)["id"]
    answer = requests.patch(  # a user removed the newer audience in Ads Manager
        f"{emu.url}/ad_accounts/{ACCT}/audiences/{newer}",
        json={"operation_type": "REMOVE"},
        headers={"Authorization": f"Bearer {tokens.get()}"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "REMOVED"
    assert {a["id"] for a in client.iter_audiences()} == {older, newer}  # still listed
    found = client.find_customer_list_audience(list_id)
    assert found is not None and found["id"] == older
    requests.patch(
        f"{emu.url}/ad_accounts/{ACCT}/audiences/{older}",
        json={"operation_type": "REMOVE"},
        headers={"Authorization": f"Bearer {tokens.get()}"},
        timeout=10,
    ).raise_for_status()
    assert client.find_customer_list_audience(list_id) is None


def test_check_access_is_one_cheap_read(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path)
    for i in range(3):
        client.create_customer_list(f"l{i}", "EMAIL", blob(1, i))
    before = len(emu.requests)
    assert client.check_access() is None
    made = emu.requests[before:]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in made] == [("GET", "customer_lists")]
    assert str(made[0].query.get("page_size")) in ("1", "['1']")


def test_check_access_raises_the_auth_error(emu, tmp_path) -> None:
    client, _, _ = make_client(emu, tmp_path, access_token="wrong-token", refresh=False)
    with pytest.raises(PinterestAuthError) as info:
        client.check_access()
    assert "access check" in str(info.value) and "wrong-token" not in str(info.value)
    assert isinstance(info.value, PinterestError)
