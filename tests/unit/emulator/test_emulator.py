"""The Pinterest API v5 emulator, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from target_pinterest_audiences.emulator import PinterestEmulator, token_fingerprint

ACCOUNT = "549755885175"
H = [f"{i:064x}" for i in range(1, 11)]


@pytest.fixture
def emu() -> Iterator[PinterestEmulator]:
    with PinterestEmulator() as emulator:
        yield emulator


@pytest.fixture
def api(emu: PinterestEmulator) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer test-access-token"
        yield session


def lists_url(emu: PinterestEmulator, account: str = ACCOUNT) -> str:
    return f"{emu.url}/ad_accounts/{account}/customer_lists"


def audiences_url(emu: PinterestEmulator, account: str = ACCOUNT) -> str:
    return f"{emu.url}/ad_accounts/{account}/audiences"


def create_list(api: requests.Session, emu: PinterestEmulator, name: str, hashes: list[str]) -> str:
    r = api.post(
        lists_url(emu), json={"name": name, "records": ",".join(hashes), "list_type": "EMAIL"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def refresh(
    emu: PinterestEmulator,
    token: str,
    *,
    secret: str = "test-client-secret",
    continuous: bool = False,
) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if continuous:
        data["continuous_refresh"] = "true"
    return requests.post(
        f"{emu.url}/oauth/token",
        data=data,
        headers={"Authorization": basic("test-client-id", secret)},
        timeout=5,
    )


# ---------------------------------------------------------------- customer lists


def test_create_get_and_page_through_lists(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.configure(ad_accounts=[ACCOUNT, "42"])  # the token may use an empty account too
    ids = [create_list(api, emu, f"list {i}", [H[i], f" {H[i + 1]} ", ""]) for i in range(5)]
    assert ids == sorted(ids, key=int)
    assert all(i.isdigit() for i in ids)
    assert emu.members(ACCOUNT, ids[0]) == {H[0], H[1]}

    got = api.get(f"{lists_url(emu)}/{ids[2]}").json()
    assert got["name"] == "list 2" and got["id"] == ids[2]
    assert got["num_uploaded_user_records"] == 2 and got["num_batches"] == 1

    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {}
    while True:
        body = api.get(lists_url(emu), params=params).json()
        pages += 1
        assert len(body["items"]) <= 2  # emulator default page_size
        seen += [item["id"] for item in body["items"]]
        if not body["bookmark"]:
            break
        params = {"bookmark": body["bookmark"]}
    assert seen == ids and pages == 3

    desc = api.get(lists_url(emu), params={"order": "DESCENDING", "page_size": "250"}).json()
    assert [item["id"] for item in desc["items"]] == ids[::-1]
    assert desc["bookmark"] is None
    assert api.get(lists_url(emu, "42")).json() == {"items": [], "bookmark": None}
    assert emu.spec_violations == []


def test_patch_add_and_remove(emu: PinterestEmulator, api: requests.Session) -> None:
    list_id = create_list(api, emu, "l", H[:3])
    url = f"{lists_url(emu)}/{list_id}"
    r = api.patch(url, json={"operation_type": "ADD", "records": ",".join(H[3:6])})
    assert r.status_code == 200
    assert emu.members(ACCOUNT, list_id) == set(H[:6])
    r = api.patch(url, json={"operation_type": "REMOVE", "records": f"{H[0]},{H[9]}"})
    assert r.status_code == 200
    body = r.json()
    assert body["num_batches"] == 3
    assert body["num_uploaded_user_records"] == 6
    assert body["num_removed_user_records"] == 2
    assert emu.members(ACCOUNT, list_id) == set(H[1:6])
    assert (
        api.patch(
            f"{lists_url(emu)}/999", json={"operation_type": "ADD", "records": H[0]}
        ).status_code
        == 404
    )
    assert api.get(f"{lists_url(emu)}/999").json()["message"]
    assert emu.spec_violations == []


def test_large_patch_is_fast(emu: PinterestEmulator, api: requests.Session) -> None:
    list_id = create_list(api, emu, "big", [])
    records = ",".join(f"{i:064x}" for i in range(10_000))
    started = time.perf_counter()
    for _ in range(5):
        r = api.patch(
            f"{lists_url(emu)}/{list_id}", json={"operation_type": "ADD", "records": records}
        )
        assert r.status_code == 200
    assert time.perf_counter() - started < 3
    assert len(emu.members(ACCOUNT, list_id)) == 10_000
    assert emu.spec_violations == []


# ---------------------------------------------------------------- audiences


def test_audiences_create_list_and_min_size() -> None:
    # matched at once; H[i] start with 8 zero hex digits, so every one is a matched user
    with PinterestEmulator(min_audience_size=3, matching_delay=0) as emu, requests.Session() as api:
        api.headers["Authorization"] = "Bearer test-access-token"
        small = create_list(api, emu, "small", H[:2])
        big = create_list(api, emu, "big", H[:5])

        def create(list_id: str) -> requests.Response:
            return api.post(
                audiences_url(emu),
                json={
                    "name": f"aud {list_id}",
                    "audience_type": "CUSTOMER_LIST",
                    "rule": {"customer_list_id": list_id},
                    "description": "d",
                },
            )

        refused = create(small)
        assert refused.status_code == 400
        assert refused.json()["code"] == 2613
        assert "too small" in refused.json()["message"]
        assert create("12345").status_code == 404

        made = create(big)
        assert made.status_code == 200
        audience = made.json()
        assert audience["size"] == 5 and audience["rule"]["customer_list_id"] == big
        assert [a["id"] for a in emu.audiences(ACCOUNT)] == [audience["id"]]

        emu.seed_audience(ACCOUNT, "seeded", big)
        emu.seed_audience(ACCOUNT, "seeded 2", big)
        names: list[str] = []
        params: dict[str, str] = {}
        while True:
            body = api.get(audiences_url(emu), params=params).json()
            names += [a["name"] for a in body["items"]]
            if not body["bookmark"]:
                break
            params = {"bookmark": body["bookmark"]}
        assert names == [f"aud {big}", "seeded", "seeded 2"]

        got = api.get(f"{audiences_url(emu)}/{audience['id']}")
        assert got.json()["name"] == f"aud {big}"
        patched = api.patch(
            f"{audiences_url(emu)}/{audience['id']}", json={"name": "renamed", "description": "new"}
        )
        assert patched.json()["name"] == "renamed"
        assert api.get(f"{audiences_url(emu)}/777").status_code == 404
        assert emu.spec_violations == []


# ---------------------------------------------------------------- spec validation


@pytest.mark.parametrize(
    ("method", "path", "payload", "needle"),
    [
        (
            "PATCH",
            "/customer_lists/{list}",
            {"operation_type": "DELETE", "records": "x"},
            "operation_type",
        ),
        ("PATCH", "/customer_lists/{list}", {"operation_type": "ADD"}, "records"),
        ("POST", "/customer_lists", {"name": "n"}, "records"),
        (
            "POST",
            "/customer_lists",
            {"name": "n", "records": "a", "list_type": "PHONE"},
            "list_type",
        ),
        ("GET", "/customer_lists?page_size=500", None, "page_size"),
        ("GET", "/audiences?order=UP", None, "order"),
        ("POST", "/audiences", {"name": "a", "rule": {}}, "audience_type"),
    ],
)
def test_spec_rejects_bad_requests(
    emu: PinterestEmulator,
    api: requests.Session,
    method: str,
    path: str,
    payload: dict[str, str] | None,
    needle: str,
) -> None:
    list_id = emu.seed_list(ACCOUNT, "l", {H[0]})
    url = f"{emu.url}/ad_accounts/{ACCOUNT}" + path.format(list=list_id)
    r = api.request(method, url, json=payload)
    assert r.status_code == 400
    assert r.json()["code"] == 1
    assert len(emu.spec_violations) == 1 and needle in emu.spec_violations[0]
    assert emu.members(ACCOUNT, list_id) == {H[0]}


def test_spec_rejects_bad_path_and_unknown_paths(
    emu: PinterestEmulator, api: requests.Session
) -> None:
    r = api.get(f"{emu.url}/ad_accounts/12ab/customer_lists")
    assert r.status_code == 400 and "ad_account_id" in r.json()["message"]
    assert api.get(f"{emu.url}/ad_accounts/1/pins").status_code == 404
    assert api.delete(f"{emu.url}/ad_accounts/1/customer_lists").status_code == 405
    r = api.post(lists_url(emu), data="name=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert len(emu.spec_violations) == 4


# ---------------------------------------------------------------- auth


def test_requires_a_valid_bearer_token(emu: PinterestEmulator) -> None:
    r = requests.get(lists_url(emu), timeout=5)
    assert r.status_code == 401
    assert r.json() == {"code": 2, "message": "Authentication failed."}
    r = requests.get(lists_url(emu), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 401
    assert emu.requests[-1].auth == "bearer"
    assert "nope" not in json.dumps([vars(x) for x in emu.requests])
    assert emu.spec_violations == []


def test_token_refresh_and_continuous_rotation(emu: PinterestEmulator) -> None:
    assert refresh(emu, "test-refresh-token", secret="wrong").status_code == 401
    assert refresh(emu, "bogus").status_code == 400

    plain = refresh(emu, "test-refresh-token")
    assert plain.status_code == 200
    body = plain.json()
    assert body["token_type"] == "bearer" and body["response_type"] == "refresh_token"
    assert body["refresh_token"] == "test-refresh-token"  # not rotated without the flag
    r = requests.get(
        lists_url(emu), timeout=5, headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert r.status_code == 200

    rotated = refresh(emu, "test-refresh-token", continuous=True).json()
    new_refresh = rotated["refresh_token"]
    assert new_refresh != "test-refresh-token"
    assert rotated["refresh_token_expires_in"] > 59 * 24 * 3600
    assert rotated["refresh_token_expires_at"] > time.time()
    assert refresh(emu, "test-refresh-token").status_code == 400  # old one is dead
    assert refresh(emu, new_refresh, continuous=True).status_code == 200
    assert emu.requests[0].auth == "basic"
    logged = emu.requests[-1].body
    assert logged["refresh_token"] == token_fingerprint(new_refresh)
    assert logged["continuous_refresh"] == "true"
    assert new_refresh not in json.dumps([vars(x) for x in emu.requests])
    assert emu.spec_violations == []


def test_refresh_token_expiry_option() -> None:
    with PinterestEmulator(refresh_token_expires_in=7 * 24 * 3600) as emu:
        body = refresh(emu, "test-refresh-token", continuous=True).json()
        assert body["refresh_token_expires_in"] <= 7 * 24 * 3600
        assert emu.spec_violations == []


def test_token_lifetime_in_calls(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.set_token_lifetime(2)
    assert api.get(lists_url(emu)).status_code == 200
    assert api.get(lists_url(emu)).status_code == 200
    assert api.get(lists_url(emu)).status_code == 401
    fresh = refresh(emu, "test-refresh-token").json()["access_token"]
    api.headers["Authorization"] = f"Bearer {fresh}"
    assert api.get(lists_url(emu)).status_code == 200


# ---------------------------------------------------------------- faults


def test_status_fault_429_headers(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.add_fault(
        "status",
        method="POST",
        path="customer_lists$",
        status=429,
        retry_after=3,
        ratelimit_reset=7,
    )
    r = api.post(lists_url(emu), json={"name": "n", "records": H[0]})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.headers["X-RateLimit-Reset"] == "7"
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Limit" in r.headers
    assert set(r.json()) == {"code", "message"}
    assert emu.lists(ACCOUNT) == []  # not applied
    assert api.post(lists_url(emu), json={"name": "n", "records": H[0]}).status_code == 200
    assert emu.faults_fired == [("status", "POST", f"/v5/ad_accounts/{ACCOUNT}/customer_lists")]
    assert emu.requests[0].fault == "status" and emu.requests[0].status == 429


def test_fault_skip_and_times(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.add_fault("status", method="GET", skip=1, times=2, status=503)
    codes = [api.get(lists_url(emu)).status_code for _ in range(5)]
    assert codes == [200, 503, 503, 200, 200]


def test_drop_before_does_not_apply(emu: PinterestEmulator, api: requests.Session) -> None:
    list_id = emu.seed_list(ACCOUNT, "l", {H[0]})
    emu.add_fault("drop_before", method="PATCH")
    with pytest.raises(requests.ConnectionError):
        api.patch(f"{lists_url(emu)}/{list_id}", json={"operation_type": "ADD", "records": H[1]})
    assert emu.members(ACCOUNT, list_id) == {H[0]}
    assert emu.requests[-1].status == 0 and emu.requests[-1].fault == "drop_before"
    # the session recovers on a new connection
    r = api.patch(f"{lists_url(emu)}/{list_id}", json={"operation_type": "ADD", "records": H[1]})
    assert r.status_code == 200
    assert emu.members(ACCOUNT, list_id) == {H[0], H[1]}


def test_drop_after_applies(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.add_fault("drop_after", method="POST", path="/customer_lists$")
    with pytest.raises(requests.ConnectionError):
        api.post(lists_url(emu), json={"name": "n", "records": f"{H[0]},{H[1]}"})
    [created] = emu.lists(ACCOUNT)
    assert emu.members(ACCOUNT, created["id"]) == {H[0], H[1]}
    assert emu.requests[-1].status == 200 and emu.requests[-1].fault == "drop_after"


def test_latency_fault_and_global_latency(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.add_fault("latency", method="GET", seconds=0.3)
    started = time.perf_counter()
    assert api.get(lists_url(emu)).status_code == 200
    assert time.perf_counter() - started >= 0.3
    emu.configure(latency=0.2)
    started = time.perf_counter()
    assert api.get(lists_url(emu)).status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_expire_token_fault(emu: PinterestEmulator, api: requests.Session) -> None:
    emu.add_fault("expire_token", method="GET")
    assert api.get(lists_url(emu)).status_code == 200
    assert api.get(lists_url(emu)).status_code == 401
    fresh = refresh(emu, "test-refresh-token").json()["access_token"]
    api.headers["Authorization"] = f"Bearer {fresh}"
    assert api.get(lists_url(emu)).status_code == 200


def test_bad_fault_kind_is_refused(emu: PinterestEmulator) -> None:
    with pytest.raises(ValueError):
        emu.add_fault("explode")
    with pytest.raises(ValueError):
        emu.add_fault("status")


# ---------------------------------------------------------------- control API and persistence


def test_control_api(emu: PinterestEmulator, api: requests.Session) -> None:
    root = emu.root_url + "/_emulator"
    list_id = create_list(api, emu, "l", [H[2], H[0]])
    state = requests.get(f"{root}/state", timeout=5).json()
    assert state["lists"][0]["id"] == list_id
    assert state["lists"][0]["member_count"] == 2
    assert state["lists"][0]["members"] == sorted([H[0], H[2]])
    assert state["request_count"] == 1 and state["spec_violations"] == []

    log = requests.get(f"{root}/requests", timeout=5).json()["requests"]
    assert log[0]["body"]["records"] == "<omitted>" and log[0]["body"]["records_count"] == 2
    assert "Bearer" not in json.dumps(log) and log[0]["auth"] == "bearer"
    full = requests.get(f"{root}/requests", params={"bodies": 1}, timeout=5).json()["requests"]
    assert full[0]["body"]["records"] == f"{H[2]},{H[0]}"

    r = requests.post(
        f"{root}/faults", json={"kind": "status", "status": 500, "method": "GET"}, timeout=5
    )
    assert r.status_code == 200
    assert api.get(lists_url(emu)).status_code == 500
    assert requests.get(f"{root}/state", timeout=5).json()["faults_fired"][0][0] == "status"

    r = requests.post(f"{root}/config", json={"page_size": 1, "min_audience_size": 5}, timeout=5)
    assert r.json()["page_size"] == 1 and emu.min_audience_size == 5
    assert requests.post(f"{root}/config", json={"bogus": 1}, timeout=5).status_code == 400
    r = requests.post(
        f"{root}/seed_list",
        json={"ad_account_id": ACCOUNT, "name": "s", "members": [H[5]]},
        timeout=5,
    )
    assert emu.members(ACCOUNT, r.json()["id"]) == {H[5]}

    assert requests.post(f"{root}/reset", timeout=5).status_code == 200
    assert emu.lists(ACCOUNT) == [] and emu.requests == []
    assert emu.spec_violations == []


def test_state_round_trip(tmp_path: Path, emu: PinterestEmulator, api: requests.Session) -> None:
    emu.configure(matching_delay=0)
    list_id = create_list(api, emu, "l", H[:3])
    emu.seed_audience(ACCOUNT, "a", list_id)
    rotated = refresh(emu, "test-refresh-token", continuous=True).json()["refresh_token"]
    emu.save_state_file(tmp_path / "state.json")
    with PinterestEmulator(matching_delay=0) as other:
        other.load_state_file(tmp_path / "state.json")
        assert other.members(ACCOUNT, list_id) == set(H[:3])
        assert other.audiences(ACCOUNT)[0]["size"] == 3
        assert refresh(other, rotated).status_code == 200
        assert other.seed_list(ACCOUNT, "next", set()) > list_id


def test_keep_alive_reuses_connection(emu: PinterestEmulator, api: requests.Session) -> None:
    for _ in range(5):
        assert api.get(lists_url(emu)).status_code == 200
    ports = set(emu._http.connections)
    assert len(ports) == 1


# ---------------------------------------------------------------- CLI


def test_cli_prints_url_and_persists_state(tmp_path: Path) -> None:
    state_file = tmp_path / "emu.json"
    cmd = [
        sys.executable,
        "-m",
        "target_pinterest_audiences.emulator",
        "--port",
        "0",
        "--state-file",
        str(state_file),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("pinterest-emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert url.endswith("/v5")
        r = requests.post(
            f"{url}/ad_accounts/{ACCOUNT}/customer_lists",
            json={"name": "cli", "records": H[0]},
            headers={"Authorization": "Bearer test-access-token"},
            timeout=5,
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    saved = json.loads(state_file.read_text())
    assert saved["lists"][0]["members"] == [H[0]]


# SHA-256 of Pinterest's OpenAPI description (v5.23.0) as the project was given it, in
# shared/pinterest/openapi-v5-audiences.json beside the repository (not read here: a test
# depends on nothing outside the repository).
PINTERESTS_SPEC_SHA256 = "0c7d92c7b5969a4f561aeb2caf6f18368057d45ff008b623c680e5268d762872"


def test_the_vendored_spec_is_pinterests_own_unchanged() -> None:
    # The emulator ships a copy so that it runs from an installed package; it must stay the
    # exact file the project was given.
    import hashlib

    from tests.conftest import REPO

    vendored = (REPO / "target_pinterest_audiences/emulator/openapi-v5-audiences.json").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == PINTERESTS_SPEC_SHA256
    info = json.loads(vendored)["info"]
    assert (info["title"], info["version"]) == ("Pinterest REST API", "5.23.0")


def test_a_request_cut_off_mid_body_is_dropped_not_a_violation() -> None:
    # A target killed mid-send leaves headers promising a body that never comes.
    import socket

    with PinterestEmulator() as emulator:
        host, port = emulator.url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"PATCH /v5/ad_accounts/1/customer_lists/1 HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer test-access-token\r\n"
                b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"oper'
            )
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(100) == b""  # closed without an answer
        assert emulator.spec_violations == []
        assert emulator.requests == []


# ---------------------------------------------------------------- Pinterest as it really is


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_matched(member_hash: str, fraction: float = 0.6) -> bool:
    # the documented rule, so that a test can compute an audience's size
    return int(member_hash[:8], 16) / 16**8 < fraction


PEOPLE = [sha(f"user{n}@example.com") for n in range(40)]


def session() -> requests.Session:
    api = requests.Session()
    api.headers["Authorization"] = "Bearer test-access-token"
    return api


def make_audience(api: requests.Session, emu: PinterestEmulator, list_id: str) -> requests.Response:
    return api.post(
        audiences_url(emu),
        json={"name": "a", "audience_type": "CUSTOMER_LIST", "rule": {"customer_list_id": list_id}},
    )


def test_defaults_are_pinterests() -> None:
    emu = PinterestEmulator()
    assert emu.matching_delay > 0 and emu.match_fraction == 0.6
    assert emu.min_matched_users == 100 and emu.min_audience_size == 100
    assert emu.max_body_bytes == 1_048_576 and emu.daily_quota == 0
    assert (emu.ads_write_per_minute, emu.ads_read_per_minute) == (400, 1000)
    assert emu.scope == "ads:read,ads:write" and emu.cumulative_exceptions is False


def test_matching_is_asynchronous_and_sizes_count_matched_members_only() -> None:
    expected = sum(is_matched(h) for h in PEOPLE)
    assert 10 < expected < 30  # most, not all, of the sample are "Pinterest users"
    with PinterestEmulator(matching_delay=0.6, min_matched_users=5) as emu, session() as api:
        list_id = create_list(api, emu, "async", PEOPLE)
        assert api.get(f"{lists_url(emu)}/{list_id}").json()["status"] == "PROCESSING"
        made = make_audience(api, emu, list_id)  # accepted while PROCESSING
        assert made.status_code == 200, made.text
        audience_url = f"{audiences_url(emu)}/{made.json()['id']}"
        assert (made.json()["status"], made.json()["size"]) == ("INITIALIZING", None)
        time.sleep(0.7)
        assert api.get(f"{lists_url(emu)}/{list_id}").json()["status"] == "READY"
        got = api.get(audience_url).json()
        assert (got["status"], got["size"]) == ("READY", expected)

        more = [sha(f"more{n}@example.com") for n in range(20)]
        r = api.patch(
            f"{lists_url(emu)}/{list_id}", json={"operation_type": "ADD", "records": ",".join(more)}
        )
        assert r.json()["status"] == "PROCESSING"
        # while the list is matched again, the audience keeps its last figures
        assert api.get(audience_url).json()["size"] == expected
        time.sleep(0.7)
        grown = expected + sum(is_matched(h) for h in more)
        assert api.get(audience_url).json()["size"] == grown
        assert emu.lists(ACCOUNT)[0]["matched_count"] == grown
        assert emu.spec_violations == []


def test_a_list_with_too_few_matched_users_is_too_small_and_refused_an_audience() -> None:
    matched = [h for h in PEOPLE if is_matched(h)]
    unmatched = [h for h in PEOPLE if not is_matched(h)]
    with PinterestEmulator(matching_delay=0, min_matched_users=5) as emu, session() as api:
        # ten members, four of them Pinterest users: too small although 10 >= 5
        small = create_list(api, emu, "small", matched[:4] + unmatched[:6])
        assert api.get(f"{lists_url(emu)}/{small}").json()["status"] == "TOO_SMALL"
        refused = make_audience(api, emu, small)
        assert refused.status_code == 400
        assert refused.json()["code"] == 2613 and "too small" in refused.json()["message"]
        emu.configure(too_small_status=409, too_small_code=77)
        assert (make_audience(api, emu, small).status_code, emu.audiences(ACCOUNT)) == (409, [])
        assert make_audience(api, emu, small).json()["code"] == 77

        ready = create_list(api, emu, "ready", matched[:5])
        audience = make_audience(api, emu, ready).json()
        assert (audience["status"], audience["size"]) == ("READY", 5)
        # members leave: the audience is TOO_SMALL now
        r = api.patch(
            f"{lists_url(emu)}/{ready}", json={"operation_type": "REMOVE", "records": matched[0]}
        )
        assert r.json()["status"] == "TOO_SMALL"
        got = api.get(f"{audiences_url(emu)}/{audience['id']}").json()
        assert (got["status"], got["size"]) == ("TOO_SMALL", 4)
        assert emu.spec_violations == []


def test_plain_emails_match_as_their_hash_and_the_fraction_can_change() -> None:
    with PinterestEmulator(matching_delay=0, min_matched_users=0) as emu, session() as api:
        plain = [f"User{n}@Example.com" for n in range(40)]  # matched as sha(lowercased)
        list_id = create_list(api, emu, "plain", plain)
        audience = make_audience(api, emu, list_id).json()
        assert audience["size"] == sum(is_matched(h) for h in PEOPLE) < 40
        r = requests.post(f"{emu.root_url}/_emulator/config", json={"match_fraction": 1}, timeout=5)
        assert r.json()["match_fraction"] == 1.0
        assert emu.audiences(ACCOUNT)[0]["size"] == 40
        r = requests.post(f"{emu.root_url}/_emulator/config", json={"match_fraction": 2}, timeout=5)
        assert r.status_code == 400


def test_finish_matching_ends_a_long_matching_at_once() -> None:
    with PinterestEmulator(matching_delay=3600, min_matched_users=0) as emu, session() as api:
        list_id = create_list(api, emu, "slow", PEOPLE[:3])
        state = requests.get(f"{emu.root_url}/_emulator/lists/{list_id}", timeout=5).json()
        assert state["status"] == "PROCESSING" and state["matching_seconds_left"] > 3500
        r = requests.post(f"{emu.root_url}/_emulator/matching/finish", timeout=5)
        assert r.status_code == 200
        assert api.get(f"{lists_url(emu)}/{list_id}").json()["status"] == "READY"
        audience = make_audience(api, emu, list_id).json()
        first_three = sum(is_matched(h) for h in PEOPLE[:3])
        assert (audience["status"], audience["size"]) == ("READY", first_three)
        r = api.patch(
            f"{lists_url(emu)}/{list_id}", json={"operation_type": "ADD", "records": PEOPLE[3]}
        )
        assert r.json()["status"] == "PROCESSING"  # for an hour; the audience keeps its figure
        assert emu.audiences(ACCOUNT)[0]["size"] == first_three
        seeded = emu.seed_list(ACCOUNT, "seeded", {PEOPLE[0]})
        assert api.get(f"{lists_url(emu)}/{seeded}").json()["status"] == "READY"  # matched already


def test_upload_counters_count_every_record() -> None:
    with PinterestEmulator(matching_delay=0) as emu, session() as api:
        list_id = create_list(api, emu, "counts", [H[0], H[0], H[1]])  # a duplicate
        url = f"{lists_url(emu)}/{list_id}"
        assert api.get(url).json()["num_uploaded_user_records"] == 3
        # members already in the list count again; so do duplicates within the call
        body = api.patch(url, json={"operation_type": "ADD", "records": f"{H[0]},{H[2]},{H[2]}"})
        assert body.json()["num_uploaded_user_records"] == 6
        # removing members that are not in the list counts too
        body = api.patch(url, json={"operation_type": "REMOVE", "records": f"{H[1]},{H[8]},{H[9]}"})
        got = body.json()
        assert (got["num_removed_user_records"], got["num_batches"]) == (3, 3)
        assert emu.members(ACCOUNT, list_id) == {H[0], H[2]}
        assert emu.spec_violations == []


def test_a_body_over_the_limit_is_answered_413_and_not_applied() -> None:
    with PinterestEmulator(max_body_bytes=2000) as emu, session() as api:
        big = [f"{n:064x}" for n in range(40)]  # about 2.6 kB of records
        r = api.post(lists_url(emu), json={"name": "big", "records": ",".join(big)})
        assert r.status_code == 413
        assert r.json() == {"code": 413, "message": "Request entity too large."}
        assert emu.lists(ACCOUNT) == [] and emu.requests[-1].status == 413
        assert create_list(api, emu, "small", big[:20])  # 1.3 kB: accepted
        emu.configure(body_too_large_code=9, body_too_large_message="Payload too big.")
        url = f"{lists_url(emu)}/{emu.lists(ACCOUNT)[0]['id']}"
        r = api.patch(url, json={"operation_type": "ADD", "records": ",".join(big)})
        assert (r.status_code, r.json()) == (413, {"code": 9, "message": "Payload too big."})
        emu.configure(max_body_bytes=0)  # no limit
        assert api.patch(url, json={"operation_type": "ADD", "records": ",".join(big)}).ok
        assert emu.spec_violations == []
    with PinterestEmulator() as emu, session() as api:  # the default: 1 MiB
        records = ",".join(f"{n:064x}" for n in range(16_200))  # 16,200 * 65 > 1,048,576
        r = api.post(lists_url(emu), json={"name": "huge", "records": records})
        assert r.status_code == 413
        r = api.post(lists_url(emu), json={"name": "ok", "records": records[: 16_000 * 65 - 1]})
        assert r.status_code == 200


def test_the_daily_quota_counts_every_call_until_the_day_resets() -> None:
    with PinterestEmulator(daily_quota=3) as emu, session() as api:
        assert api.get(lists_url(emu)).status_code == 200
        assert refresh(emu, "test-refresh-token").status_code == 200  # the token call counts
        assert create_list(api, emu, "one", [H[0]])
        refused = api.get(lists_url(emu))
        assert refused.status_code == 429
        assert refused.json()["code"] == 8
        assert 86_000 < int(refused.headers["X-RateLimit-Reset"]) <= 86_400  # hours away
        assert api.post(lists_url(emu), json={"name": "no", "records": H[1]}).status_code == 429
        assert len(emu.lists(ACCOUNT)) == 1
        state = requests.get(f"{emu.root_url}/_emulator/state", timeout=5).json()
        assert state["quota"]["calls_today"] == 3
        r = requests.post(f"{emu.root_url}/_emulator/quota/new_day", timeout=5)
        assert r.status_code == 200
        assert api.get(lists_url(emu)).status_code == 200  # past the reset
        emu.configure(day_length=0.5)
        emu.new_day()
        for _ in range(3):
            api.get(lists_url(emu))
        assert api.get(lists_url(emu)).status_code == 429
        time.sleep(0.6)
        assert api.get(lists_url(emu)).status_code == 200
        assert emu.spec_violations == []


def test_per_minute_quotas_by_rate_limit_category() -> None:
    with PinterestEmulator(ads_write_per_minute=2, ads_read_per_minute=3) as emu, session() as api:
        assert create_list(api, emu, "a", [H[0]]) and create_list(api, emu, "b", [H[1]])
        refused = api.post(lists_url(emu), json={"name": "c", "records": H[2]})
        assert refused.status_code == 429 and refused.json()["code"] == 8
        assert 0 < int(refused.headers["X-RateLimit-Reset"]) <= 60
        assert len(emu.lists(ACCOUNT)) == 2
        assert [api.get(lists_url(emu)).status_code for _ in range(4)] == [200, 200, 200, 429]
        emu.configure(ads_write_per_minute=0)  # lifted
        assert api.post(lists_url(emu), json={"name": "c", "records": H[2]}).status_code == 200
        assert emu.spec_violations == []


def test_a_token_without_the_scope_an_operation_needs_gets_401_code_3() -> None:
    with PinterestEmulator(scope="ads:read") as emu, session() as api:
        assert api.get(lists_url(emu)).status_code == 200
        refused = api.post(lists_url(emu), json={"name": "n", "records": H[0]})
        assert refused.status_code == 401
        assert refused.json()["code"] == 3
        assert "missing scopes" in refused.json()["message"].lower()
        assert "ads:write" in refused.json()["message"]
        # the refreshed token inherits the refresh token's scopes
        body = refresh(emu, "test-refresh-token").json()
        assert body["scope"] == "ads:read"
        api.headers["Authorization"] = f"Bearer {body['access_token']}"
        assert api.post(lists_url(emu), json={"name": "n", "records": H[0]}).status_code == 401

        control = f"{emu.root_url}/_emulator/tokens"
        r = requests.post(control, json={"access_token": "writer", "scope": "ads:write"}, timeout=5)
        assert r.status_code == 200
        api.headers["Authorization"] = "Bearer writer"
        assert api.post(lists_url(emu), json={"name": "n", "records": H[0]}).status_code == 200
        denied = api.get(lists_url(emu))
        assert denied.status_code == 401 and "ads:read" in denied.json()["message"]
        r = requests.post(control, json={"refresh_token": "r2", "scope": "ads:read"}, timeout=5)
        assert refresh(emu, "r2").json()["scope"] == "ads:read"
        emu.configure(scope="ads:read,ads:write")  # the initial tokens get both again
        api.headers["Authorization"] = "Bearer test-access-token"
        assert api.post(lists_url(emu), json={"name": "m", "records": H[1]}).status_code == 200
        assert emu.spec_violations == []


def test_removed_audiences_are_still_listed_as_removed() -> None:
    with PinterestEmulator(matching_delay=0, min_matched_users=0) as emu, session() as api:
        list_id = create_list(api, emu, "l", H[:3])
        audience = make_audience(api, emu, list_id).json()
        r = api.patch(f"{audiences_url(emu)}/{audience['id']}", json={"operation_type": "REMOVE"})
        assert r.json()["status"] == "REMOVED"
        r = requests.post(
            f"{emu.root_url}/_emulator/seed_audience",
            json={
                "ad_account_id": ACCOUNT,
                "name": "old",
                "customer_list_id": list_id,
                "status": "REMOVED",
            },
            timeout=5,
        )
        listed = api.get(audiences_url(emu), params={"page_size": 10}).json()["items"]
        assert [(a["id"], a["status"]) for a in listed] == [
            (audience["id"], "REMOVED"),
            (r.json()["id"], "REMOVED"),
        ]
        assert emu.spec_violations == []


def test_exceptions_count_unusable_records_by_code_without_their_values() -> None:
    with PinterestEmulator(matching_delay=0) as emu, session() as api:
        bad = ["not-a-hash", "12345", "AB" * 20 + "Z"]
        declared = H[5]
        emu.declare_unusable([declared])
        records = [H[0], "user@example.com", sha("x")[:40], sha("y")[:32], *bad, declared]
        r = api.post(lists_url(emu), json={"name": "ex", "records": ",".join(records)})
        body = r.json()
        assert (
            body["exceptions"]["1001"]["count"] == 3 and body["exceptions"]["1001"]["code"] == 1001
        )
        assert body["exceptions"]["1002"]["count"] == 1
        assert all(value not in r.text for value in [*bad, declared])
        assert body["num_uploaded_user_records"] == len(records)
        assert emu.members(ACCOUNT, body["id"]) == set(records[:4])
        # each answer describes its own upload ...
        clean = api.patch(
            f"{lists_url(emu)}/{body['id']}", json={"operation_type": "ADD", "records": H[1]}
        )
        assert clean.json()["exceptions"] == {}
        r = requests.post(
            f"{emu.root_url}/_emulator/unusable_records",
            json={"records": [H[2]], "code": 77, "message": "Opted out."},
            timeout=5,
        )
        assert r.status_code == 200
        emu.configure(cumulative_exceptions=True)  # ... or the list's whole history since
        url = f"{lists_url(emu)}/{body['id']}"
        first = api.patch(url, json={"operation_type": "ADD", "records": f"{H[2]},bad"}).json()
        assert first["exceptions"]["77"] == {"code": 77, "message": "Opted out.", "count": 1}
        assert first["exceptions"]["1001"]["count"] == 1
        second = api.patch(url, json={"operation_type": "REMOVE", "records": "bad,worse"}).json()
        assert {k: e["count"] for k, e in second["exceptions"].items()} == {"77": 1, "1001": 3}
        assert emu.spec_violations == []


def test_control_shows_what_each_list_holds() -> None:
    with PinterestEmulator(matching_delay=0, min_matched_users=2) as emu, session() as api:
        matched = [h for h in PEOPLE if is_matched(h)][:2]
        unmatched = [h for h in PEOPLE if not is_matched(h)][:1]
        list_id = create_list(api, emu, "l", matched + unmatched)
        got = requests.get(f"{emu.root_url}/_emulator/lists/{list_id}", timeout=5).json()
        assert got["members"] == sorted(matched + unmatched)
        assert (got["member_count"], got["matched_count"], got["status"]) == (3, 2, "READY")
        state = requests.get(f"{emu.root_url}/_emulator/state", timeout=5).json()
        assert state["lists"][0]["matched_count"] == 2
        assert requests.get(f"{emu.root_url}/_emulator/lists/1", timeout=5).status_code == 404


def test_a_version_1_state_file_still_loads(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "next_id": 549755813890,
        "lists": [
            {
                "id": "549755813889",
                "ad_account_id": ACCOUNT,
                "name": "old",
                "list_type": "EMAIL",
                "members": H[:3],
                "created_time": 1,
                "updated_time": 1,
                "num_batches": 1,
                "num_uploaded_user_records": 3,
                "num_removed_user_records": 0,
            }
        ],
        "audiences": [
            {
                "id": "549755813890",
                "ad_account_id": ACCOUNT,
                "name": "old",
                "audience_type": "CUSTOMER_LIST",
                "rule": {"customer_list_id": "549755813889"},
                "description": None,
                "created_timestamp": 1,
                "updated_timestamp": 1,
                "status": "READY",
            }
        ],
        "access_tokens": {"test-access-token": 0},
        "refresh_tokens": {"test-refresh-token": 4_000_000_000},
    }
    (tmp_path / "v1.json").write_text(json.dumps(old))
    with PinterestEmulator(min_matched_users=3) as emu:
        emu.load_state_file(tmp_path / "v1.json")
        (audience,) = emu.audiences(ACCOUNT)
        assert (audience["status"], audience["size"]) == ("READY", 3)
        assert refresh(emu, "test-refresh-token").json()["scope"] == "ads:read,ads:write"


def test_the_command_documents_its_options_and_control_endpoints() -> None:
    from target_pinterest_audiences.emulator.options import (
        option_fields,
        option_flag,
        shown_default,
    )

    shown = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences.emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "1000"},  # one line per option
    ).stdout
    for spec in option_fields():
        assert f"{option_flag(spec)} " in shown
        assert f"(default: {shown_default(spec)})" in shown
    assert "--ad-account ID " in shown and "(default: 549755885175)" in shown
    for endpoint in ("/_emulator/state", "/_emulator/lists/{id}", "/_emulator/quota/new_day"):
        assert endpoint in shown
