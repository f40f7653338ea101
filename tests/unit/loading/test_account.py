"""The account index: one read of an ad account, lookups, what the run adds, fresh reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from target_pinterest_audiences.loading.account import AccountIndex, Kind, pages
from target_pinterest_audiences.loading.figures import per_object


class Account:
    """What Pinterest holds, and how often it was listed."""

    def __init__(self) -> None:
        self.items: dict[Kind, list[dict[str, Any]]] = {"lists": [], "audiences": []}
        self.reads: list[Kind] = []
        self.delay = 0.0

    def read_all(self, kind: Kind) -> Iterator[dict[str, Any]]:
        self.reads.append(kind)
        time.sleep(self.delay)
        yield from list(self.items[kind])


def a_list(ident: int, name: str, created: int = 0) -> dict[str, Any]:
    return {"id": str(ident), "name": name, "created_time": created}


def an_audience(ident: int, list_id: int, status: str = "READY") -> dict[str, Any]:
    rule = {"customer_list_id": str(list_id)}
    return {"id": str(ident), "audience_type": "CUSTOMER_LIST", "rule": rule, "status": status}


def test_lookups_by_id_name_and_list() -> None:
    account = Account()
    account.items["lists"] = [a_list(1, "A", 10), a_list(2, "A", 20), a_list(3, "B")]
    account.items["audiences"] = [
        an_audience(10, 2),
        an_audience(11, 2, status="REMOVED"),
        an_audience(12, 3, status="REMOVED"),
        {"id": "13", "audience_type": "ACTALIKE", "rule": {"seed_id": ["10"]}},
    ]
    index = AccountIndex("1", account.read_all).load()
    assert index.list_by_id("3")["name"] == "B"
    assert [x["id"] for x in index.lists_named("A")] == ["1", "2"]
    assert index.lists_named("missing") == []
    assert index.audience_of("2")["id"] == "10"  # the REMOVED one is left out
    assert index.audience_of("3") is None
    assert [a["id"] for a in index.audiences("ACTALIKE")] == ["13"]
    assert index.counts() == (3, 4) and index.listing_calls() == 2
    assert account.reads == ["lists", "audiences"]


def test_what_the_run_creates_enters_the_index_and_survives_a_fresh_read() -> None:
    account = Account()
    index = AccountIndex("1", account.read_all).load()
    index.remember("lists", a_list(5, "New"))
    index.remember("audiences", an_audience(6, 5))
    assert index.lists_named("New")[0]["id"] == "5" and index.audience_of("5")["id"] == "6"
    index.refresh("lists")  # Pinterest does not list it yet: the run's own create stays
    assert index.lists_named("New")[0]["id"] == "5"
    account.items["lists"] = [a_list(5, "Renamed")]
    index.refresh("lists")  # Pinterest's answer wins once it lists it
    assert index.lists_named("New") == [] and index.lists_named("Renamed")[0]["id"] == "5"


def test_fresh_reads_asked_for_together_are_one_read() -> None:
    account = Account()
    index = AccountIndex("1", account.read_all).load()
    account.delay = 0.2
    account.reads.clear()
    asked = index.clock()
    first = threading.Thread(target=index.refresh, args=("lists",))
    first.start()
    time.sleep(0.05)  # the first read is under way; eight more ask for one after `asked`
    others = [
        threading.Thread(target=index.refresh, args=("lists",), kwargs={"since": asked})
        for _ in range(8)
    ]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join()
    assert account.reads == ["lists"]
    later = index.clock()
    index.refresh("lists", since=later)  # asked after the last read began: read again
    assert account.reads == ["lists", "lists"]


def test_a_name_is_claimed_by_one_stream_at_a_time() -> None:
    index = AccountIndex("1", Account().read_all).load()
    inside: list[int] = []
    most = [0]

    def claim() -> None:
        with index.claim("A"):
            inside.append(1)
            most[0] = max(most[0], len(inside))
            time.sleep(0.01)
            inside.pop()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_pages_and_the_read_back_choice() -> None:
    assert [pages(n) for n in (0, 1, 250, 251, 5000)] == [1, 1, 1, 2, 20]
    # One stream in an account of 3,000 lists and audiences: two reads, not 24 pages.
    assert per_object(2, pages(3000) + pages(3000))
    # 300 streams: 600 objects, against 28 pages.
    assert not per_object(600, pages(3300) + pages(3300))
