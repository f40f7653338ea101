"""Listing a big ad account: every id once, in order, with valid bookmarks, and every item of
every page still checked against Pinterest's OpenAPI file."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from target_pinterest_audiences.emulator import PinterestEmulator

ACCOUNT = "549755885175"
OTHER = "549755885176"
SIZE = 5000


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[PinterestEmulator, list[str], list[str]]]:
    """An account of 5,000 lists and 5,000 audiences (and a small one beside it)."""
    with PinterestEmulator(matching_delay=0, ad_accounts=(ACCOUNT, OTHER)) as emu:
        lists, audiences = [], []
        for i in range(SIZE):
            list_id = emu.seed_list(ACCOUNT, f"list {i}", [f"{i:064x}"])
            lists.append(list_id)
            audiences.append(emu.seed_audience(ACCOUNT, f"audience {i}", list_id))
        emu.seed_list(OTHER, "elsewhere", [f"{1:064x}"])
        yield emu, lists, audiences


def page_through(
    emu: PinterestEmulator, kind: str, order: str | None = None, page_size: int = 250
) -> tuple[list[str], list[Any]]:
    """Every id of a list call, and the bookmarks it was given."""
    url = f"{emu.url}/ad_accounts/{ACCOUNT}/{kind}"
    params: dict[str, Any] = {"page_size": page_size}
    if order:
        params["order"] = order
    ids: list[str] = []
    marks: list[Any] = []
    with requests.Session() as api:
        api.headers["Authorization"] = "Bearer test-access-token"
        while True:
            answer = api.get(url, params=params, timeout=30)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert len(body["items"]) <= page_size
            ids += [item["id"] for item in body["items"]]
            marks.append(body["bookmark"])
            if not body["bookmark"]:
                return ids, marks
            params["bookmark"] = body["bookmark"]


@pytest.mark.parametrize("kind", ["customer_lists", "audiences"])
@pytest.mark.parametrize("order", [None, "ASCENDING", "DESCENDING"])
def test_a_5000_item_account_pages_every_id_once_in_order(
    big: tuple[PinterestEmulator, list[str], list[str]], kind: str, order: str | None
) -> None:
    emu, lists, audiences = big
    created = lists if kind == "customer_lists" else audiences
    ids, marks = page_through(emu, kind, order)
    want = sorted(created, key=int, reverse=order == "DESCENDING")
    assert ids == want  # every id exactly once, in order
    assert len(marks) == SIZE // 250  # 20 full pages: the last has no bookmark
    assert all(marks[:-1]) and marks[-1] is None
    for mark, last in zip(marks[:-1], ids[249::250], strict=False):
        decoded = json.loads(base64.urlsafe_b64decode(mark + "=" * (-len(mark) % 4)))
        assert decoded["after"] == last  # each page starts right after the one before
    assert emu.spec_violations == []


def test_a_bookmark_of_another_listing_or_order_is_refused(
    big: tuple[PinterestEmulator, list[str], list[str]],
) -> None:
    emu, _, _ = big
    _, marks = page_through(emu, "customer_lists")
    with requests.Session() as api:
        api.headers["Authorization"] = "Bearer test-access-token"
        base = f"{emu.url}/ad_accounts/{ACCOUNT}"
        for url, params in (
            (f"{base}/audiences", {"bookmark": marks[0]}),
            (f"{base}/customer_lists", {"bookmark": marks[0], "order": "DESCENDING"}),
            (f"{emu.url}/ad_accounts/{OTHER}/customer_lists", {"bookmark": marks[0]}),
        ):
            answer = api.get(url, params=params, timeout=30)
            assert answer.status_code == 400 and answer.json()["code"] == 1
    assert len(emu.spec_violations) == 3  # the emulator notes each refused bookmark
    emu.spec_violations.clear()


def test_every_item_of_every_page_is_checked_even_when_served_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page's items are judged one by one and their verdicts remembered: a bad item is
    reported on every page that carries it, and a changed item is judged anew."""
    with PinterestEmulator(matching_delay=0) as emu:
        ids = [emu.seed_list(ACCOUNT, f"list {i}", [f"{i:064x}"]) for i in range(5)]
        view = emu.operations.list_view
        broken = {ids[4]: {"num_batches": "two"}}  # a string where the spec says number

        def list_view(c: Any) -> dict[str, Any]:
            return {**view(c), **broken.get(c.id, {})}

        monkeypatch.setattr(emu.operations, "list_view", list_view)
        for _ in range(2):  # the second listing is served from remembered verdicts
            page_through(emu, "customer_lists", page_size=3)
        found = [v for v in emu.spec_violations if "customer_lists/list response" in v]
        assert len(found) == 2
        assert all(".items[1].num_batches" in v for v in found)  # page 2, second item
        broken[ids[0]] = {"status": "LOST"}  # not one of the spec's statuses
        page_through(emu, "customer_lists", page_size=3)
        found = [v for v in emu.spec_violations if "customer_lists/list response" in v]
        assert len(found) == 4
        assert any(".items[0].status" in v for v in found)
        assert emu.spec_violations == found  # nothing else
