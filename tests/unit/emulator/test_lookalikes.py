"""The emulator's lookalike (ACTALIKE) audiences, over real HTTP: as Pinterest's OpenAPI file
describes them, strictly (issue 18.6): each refusal, the size as a documented function, and
lookalikes listed with the other audiences."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.emulator.matching import COUNTRY_USERS

ACCOUNT = "549755885175"


def hashes(count: int) -> list[str]:
    return [hashlib.sha256(f"user{n}@example.com".encode()).hexdigest() for n in range(count)]


@pytest.fixture
def emu() -> Iterator[PinterestEmulator]:
    with PinterestEmulator(matching_delay=0, match_fraction=1.0) as emulator:
        yield emulator
        assert emulator.spec_violations == []


@pytest.fixture
def api() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer test-access-token"
        yield session


def seed(emu: PinterestEmulator, members: int, name: str = "Seed") -> str:
    """A CUSTOMER_LIST audience on a list of ``members`` matched members."""
    list_id = emu.seed_list(ACCOUNT, name, hashes(members))
    return emu.seed_audience(ACCOUNT, name, list_id)


def lookalike(
    emu: PinterestEmulator, api: requests.Session, seeds: list[str], **rule: Any
) -> requests.Response:
    body = {
        "name": "Lookalike",
        "audience_type": "ACTALIKE",
        "rule": {"seed_id": seeds, "country": "US", "percentage": 5, **rule},
    }
    return api.post(f"{emu.url}/ad_accounts/{ACCOUNT}/audiences", json=body, timeout=5)


def test_a_lookalike_of_a_big_enough_seed_is_created_sized_and_listed(
    emu: PinterestEmulator, api: requests.Session
) -> None:
    seed_id = seed(emu, 150)
    answer = lookalike(emu, api, [seed_id], country="CA", percentage=3)
    assert answer.status_code == 200, answer.text
    created = answer.json()
    assert created["audience_type"] == "ACTALIKE"
    assert created["rule"] == {"seed_id": [seed_id], "country": "CA", "percentage": 3}
    # The size: `percentage` percent of the country's (emulated) Pinterest users.
    assert created["status"] == "READY"
    assert created["size"] == COUNTRY_USERS["CA"] * 3 // 100 == 300_000
    listed = api.get(
        f"{emu.url}/ad_accounts/{ACCOUNT}/audiences", params={"page_size": 250}, timeout=5
    ).json()["items"]
    assert [a["id"] for a in listed if a["audience_type"] == "ACTALIKE"] == [created["id"]]


def test_a_lookalike_is_initializing_while_matching(api: requests.Session) -> None:
    with PinterestEmulator(matching_delay=30, match_fraction=1.0) as emu:
        list_id = emu.seed_list(ACCOUNT, "Seed", hashes(150))  # seeded lists are matched
        seed_id = emu.seed_audience(ACCOUNT, "Seed", list_id)
        created = lookalike(emu, api, [seed_id]).json()
        assert (created["status"], created["size"]) == ("INITIALIZING", None)


@pytest.mark.parametrize(
    ("case", "status", "code", "words"),
    [
        ("unknown seed", 400, 2625, "not found"),
        ("removed seed", 400, 2625, "was removed"),
        ("small seed", 400, 2613, "too small"),
        ("country", 400, 2625, "is not available"),
        ("percentage 0", 400, 2625, "1-10"),
        ("percentage 11", 400, 2625, "1-10"),
    ],
)
def test_each_refusal(
    emu: PinterestEmulator, api: requests.Session, case: str, status: int, code: int, words: str
) -> None:
    big = seed(emu, 150, "Big")
    rules: dict[str, tuple[list[str], dict[str, Any]]] = {
        "unknown seed": (["123456789"], {}),
        "removed seed": (
            [emu.seed_audience(ACCOUNT, "Gone", emu.seed_list(ACCOUNT, "Gone", hashes(150)))],
            {},
        ),
        "small seed": ([seed(emu, 99, "Small")], {}),
        "country": ([big], {"country": "FR"}),
        "percentage 0": ([big], {"percentage": 0}),
        "percentage 11": ([big], {"percentage": 11}),
    }
    seeds, rule = rules[case]
    if case == "removed seed":
        api.patch(
            f"{emu.url}/ad_accounts/{ACCOUNT}/audiences/{seeds[0]}",
            json={"operation_type": "REMOVE"},
            timeout=5,
        ).raise_for_status()
    answer = lookalike(emu, api, seeds, **rule)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert words in answer.json()["message"]
    assert not [a for a in emu.audiences(ACCOUNT) if a["audience_type"] == "ACTALIKE"]


def test_the_options_change_the_countries_and_the_seed_minimum(
    emu: PinterestEmulator, api: requests.Session
) -> None:
    emu.configure(lookalike_countries="US,FR", min_seed_size=10)
    small = seed(emu, 20, "Twenty")
    assert lookalike(emu, api, [small], country="FR").status_code == 200
    assert lookalike(emu, api, [small], country="GB").status_code == 400
