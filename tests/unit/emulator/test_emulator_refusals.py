"""The emulator's refusals that schemathesis asked for (issue 21): ad accounts a token may not
use, the token call without the app's credentials, methods the API does not have, bookmarks
the server never issued. Over real HTTP, as the other emulator tests."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from target_pinterest_audiences.emulator import PinterestEmulator

ACCOUNT = "549755885175"  # the default: the one ad account the tokens may use
OTHER = "549755885176"
BEARER = {"Authorization": "Bearer test-access-token"}
H = [f"{i:064x}" for i in range(1, 4)]
NOT_PERMITTED = {"code": 29, "message": "You are not permitted to access that resource."}


@pytest.fixture
def emu() -> Iterator[PinterestEmulator]:
    with PinterestEmulator() as emulator:
        yield emulator


def lists_url(emu: PinterestEmulator, account: str) -> str:
    return f"{emu.url}/ad_accounts/{account}/customer_lists"


def create(
    emu: PinterestEmulator, account: str, token: str = "test-access-token"
) -> requests.Response:
    return requests.post(
        lists_url(emu, account),
        json={"name": "l", "records": ",".join(H)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def control(emu: PinterestEmulator, action: str, body: object) -> requests.Response:
    return requests.post(f"{emu.root_url}/_emulator/{action}", json=body, timeout=5)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------- ad accounts


def test_an_ad_account_the_token_may_not_use_is_refused_403_code_29(emu) -> None:
    assert create(emu, ACCOUNT).status_code == 200
    for call in (
        lambda: create(emu, OTHER),
        lambda: requests.get(lists_url(emu, OTHER), headers=BEARER, timeout=5),
        lambda: requests.get(f"{lists_url(emu, OTHER)}/1", headers=BEARER, timeout=5),
        lambda: requests.get(f"{emu.url}/ad_accounts/5/audiences", headers=BEARER, timeout=5),
    ):
        r = call()
        assert (r.status_code, r.json()) == (403, NOT_PERMITTED)
    assert emu.lists(OTHER) == [] and len(emu.lists(ACCOUNT)) == 1
    assert [r.status for r in emu.requests] == [200, 403, 403, 403, 403]
    assert emu.spec_violations == []  # a refusal, not a departure from the spec


def test_the_refusal_can_be_404_code_2_instead(emu) -> None:
    emu.configure(ad_account_refusal="not_found")
    r = create(emu, OTHER)
    assert (r.status_code, r.json()) == (404, {"code": 2, "message": "AdAccount not found."})
    assert emu.lists(OTHER) == [] and emu.spec_violations == []
    with pytest.raises(ValueError, match="forbidden, not_found"):
        emu.configure(ad_account_refusal="maybe")


def test_authentication_and_scopes_come_before_the_ad_account(emu) -> None:
    r = requests.get(lists_url(emu, OTHER), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert (r.status_code, r.json()["code"]) == (401, 2)
    emu.add_access_token("reader", scope="ads:read")
    r = create(emu, OTHER, "reader")
    assert (r.status_code, r.json()["code"]) == (401, 3)


def test_the_tokens_ad_accounts_are_an_option_of_the_class_and_the_control_api() -> None:
    with PinterestEmulator(ad_accounts=[ACCOUNT, OTHER]) as emu:
        assert create(emu, OTHER).status_code == 200
        assert create(emu, "1").status_code == 403
        assert emu.config()["ad_accounts"] == [ACCOUNT, OTHER]
        r = control(emu, "config", {"ad_accounts": ["1"]})
        assert r.status_code == 200 and r.json()["ad_accounts"] == ["1"]
        assert (create(emu, "1").status_code, create(emu, ACCOUNT).status_code) == (200, 403)
        bad = control(emu, "config", {"ad_accounts": ["12ab"]})
        assert bad.status_code == 400 and "digits" in bad.json()["error"]
        emu.ad_accounts = "7, 8"  # an attribute too, as every option; commas or spaces
        assert emu.ad_accounts == ("7", "8") and create(emu, "8").status_code == 200
    with pytest.raises(ValueError, match="digits"):
        PinterestEmulator(ad_accounts=["549 755"])


def test_the_command_takes_repeated_ad_account_flags() -> None:
    cmd = [sys.executable, "-m", "target_pinterest_audiences.emulator", "--port", "0"]
    cmd += ["--ad-account", OTHER, "--ad-account", "1", "--ad-account-refusal", "not_found"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        root = url.removesuffix("/v5")
        config = requests.get(f"{root}/_emulator/config", timeout=5).json()
        assert (config["ad_accounts"], config["ad_account_refusal"]) == ([OTHER, "1"], "not_found")
        refused = requests.get(
            f"{url}/ad_accounts/{ACCOUNT}/customer_lists", headers=BEARER, timeout=5
        )
        assert refused.status_code == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_a_token_added_through_the_control_api_may_bring_its_own_ad_accounts(
    emu, tmp_path: Path
) -> None:
    assert control(emu, "tokens", {"access_token": "agency", "ad_accounts": ["111", "222"]}).ok
    assert create(emu, "111", "agency").status_code == 200
    assert create(emu, ACCOUNT, "agency").status_code == 403  # only its own, not the option's
    assert create(emu, "111").status_code == 403  # and the other tokens keep theirs
    control(emu, "tokens", {"access_token": "plain"})
    assert create(emu, ACCOUNT, "plain").status_code == 200  # none given: the option's
    # A refresh token's ad accounts pass to the access tokens refreshed with it.
    emu.add_refresh_token("agency-refresh", ad_accounts=["333"])
    r = requests.post(
        f"{emu.url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "agency-refresh"},
        headers={"Authorization": basic("test-client-id", "test-client-secret")},
        timeout=5,
    )
    refreshed = r.json()["access_token"]
    assert create(emu, "333", refreshed).status_code == 200
    assert create(emu, ACCOUNT, refreshed).status_code == 403
    # ... and they survive a state file.
    emu.save_state_file(tmp_path / "state.json")
    with PinterestEmulator() as other:
        other.load_state_file(tmp_path / "state.json")
        assert create(other, "222", "agency").status_code == 200
        assert create(other, ACCOUNT, "agency").status_code == 403
        assert create(other, ACCOUNT, "plain").status_code == 200
    bad = control(emu, "tokens", {"access_token": "x", "ad_accounts": ["abc"]})
    assert bad.status_code == 400


# ---------------------------------------------------------------- the token call


@pytest.mark.parametrize(
    "data",
    [
        None,  # no body at all
        {"grant_type": "authorization_code"},  # a body the spec refuses
        {"grant_type": "refresh_token", "refresh_token": "test-refresh-token"},  # a good one
    ],
)
def test_the_token_call_without_the_apps_credentials_is_401_code_2(emu, data) -> None:
    for headers in ({}, {"Authorization": basic("test-client-id", "wrong")}, BEARER):
        r = requests.post(f"{emu.url}/oauth/token", data=data, headers=headers, timeout=5)
        assert (r.status_code, r.json()) == (401, {"code": 2, "message": "Authentication failed."})
    # a request that departs from the spec is still recorded as such
    assert len(emu.spec_violations) == (0 if data and "refresh_token" in data else 3)


def test_the_token_call_with_the_apps_credentials_checks_the_body(emu) -> None:
    app = {"Authorization": basic("test-client-id", "test-client-secret")}
    r = requests.post(
        f"{emu.url}/oauth/token", data={"grant_type": "refresh_token"}, headers=app, timeout=5
    )
    assert r.status_code == 400 and "refresh_token" in r.json()["message"]


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "OPTIONS", "QUERY", "FROBNICATE"])
def test_a_method_the_api_does_not_have_is_a_json_405_with_allow(emu, method: str) -> None:
    r = requests.request(method, lists_url(emu, ACCOUNT), headers=BEARER, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["code"] == 1 and "allowed: GET, POST" in r.json()["message"]
    r = requests.request(method, f"{lists_url(emu, ACCOUNT)}/1", headers=BEARER, timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, PATCH"
    r = requests.request(method, f"{emu.url}/oauth/token", timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.request(method, f"{emu.url}/pins", timeout=5)  # a path the API has not
    assert r.status_code == 404 and r.json()["code"] == 404
    assert len(emu.spec_violations) == 4


def test_head_is_a_405_without_a_body(emu) -> None:
    with requests.Session() as session:  # the connection stays usable: no stray body
        r = session.head(lists_url(emu, ACCOUNT), headers=BEARER, timeout=5)
        assert (r.status_code, r.headers["Allow"], r.content) == (405, "GET, POST", b"")
        assert session.get(lists_url(emu, ACCOUNT), headers=BEARER, timeout=5).status_code == 200


def test_head_and_options_can_be_answered_instead(emu) -> None:
    emu.configure(head_and_options=True)
    with requests.Session() as session:
        r = session.head(lists_url(emu, ACCOUNT), headers=BEARER, timeout=5)
        assert (r.status_code, r.content) == (200, b"")
        r = session.options(lists_url(emu, ACCOUNT), timeout=5)
        assert (r.status_code, r.headers["Allow"], r.content) == (
            204,
            "GET, POST, HEAD, OPTIONS",
            b"",
        )
        r = session.options(f"{emu.url}/oauth/token", timeout=5)
        assert r.headers["Allow"] == "POST, OPTIONS"  # no GET, so no HEAD
        r = session.request("TRACE", lists_url(emu, ACCOUNT), timeout=5)
        assert (r.status_code, r.headers["Allow"]) == (405, "GET, POST, HEAD, OPTIONS")
        assert session.get(lists_url(emu, ACCOUNT), headers=BEARER, timeout=5).status_code == 200


def test_control_endpoints_answer_405_for_another_method_and_404_for_none(emu) -> None:
    r = requests.put(f"{emu.root_url}/_emulator/state", timeout=5)
    assert (r.status_code, r.headers["Allow"]) == (405, "GET")
    r = requests.request("TRACE", f"{emu.root_url}/_emulator/faults", data=b"not json", timeout=5)
    assert (r.status_code, r.headers["Allow"]) == (405, "DELETE, GET, POST")
    assert "TRACE is not allowed" in r.json()["error"]
    r = requests.request("TRACE", f"{emu.root_url}/_emulator/nothing", timeout=5)
    assert r.status_code == 404 and "no control endpoint" in r.json()["error"]


# ---------------------------------------------------------------- bookmarks


@pytest.mark.parametrize("bookmark", ["garbage", "\u0094\u00f7p", "e30"])  # e30: base64 of {}
def test_a_bookmark_the_server_never_issued_is_refused_400(emu, bookmark: str) -> None:
    # Pinterest's bookmark is its own token: schemathesis's baseline says why it sees 400s here.
    r = requests.get(
        lists_url(emu, ACCOUNT), params={"bookmark": bookmark}, headers=BEARER, timeout=5
    )
    assert r.status_code == 400 and r.json()["code"] == 1 and "bookmark" in r.json()["message"]
    assert json.dumps(r.json())  # JSON, as every answer
