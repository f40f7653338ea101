"""The quota floor that `scripts/bench_many.py` prints: a lower bound, and a close one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))

from quota_floor import (
    Account,
    StreamWrites,
    chain_seconds,
    listing_pages,
    quota_floor,
    stream_writes,
    window_seconds,
    writes_seconds,
)


def test_a_window_of_calls_waits_a_minute_per_quota_beyond_the_first() -> None:
    assert window_seconds(0, 400, 0.15) == 0
    assert window_seconds(1, 400, 0.15) == 0.15
    assert window_seconds(400, 400, 0.15) == 0.15
    assert window_seconds(401, 400, 0.15) == pytest.approx(60.15)
    assert window_seconds(1200, 400, 0.15) == pytest.approx(120.15)
    assert window_seconds(5000, 0, 0.15) == 0.15  # no quota


def test_a_chain_of_pages_pays_the_latency_per_page_until_the_quota_binds() -> None:
    assert chain_seconds(0, 1000, 0.15) == 0
    assert chain_seconds(24, 1000, 0.15) == pytest.approx(24 * 0.15)
    # 1,000 reads a minute cannot bind a chain at 150 ms a call (400 calls a minute at most)
    assert chain_seconds(2000, 1000, 0.15) == pytest.approx(2000 * 0.15)
    # at 10 ms a call it does: the 11th call waits for the first to leave the window
    assert chain_seconds(11, 10, 0.01) == pytest.approx(60.01)
    assert chain_seconds(20, 10, 0.01) == pytest.approx(60 + 10 * 0.01)


def test_listing_pages_count_both_calls_even_when_empty() -> None:
    assert listing_pages(0, 0) == 2
    assert listing_pages(250, 250) == 2
    assert listing_pages(3000, 3000) == 24
    assert listing_pages(3300, 3301) == 14 + 14


def test_writes_of_streams_with_audiences() -> None:
    one = stream_writes(2000, audience=True)
    assert (one.updates, one.calls) == (0, 2)
    assert stream_writes(50_000, audience=True) == StreamWrites(4, True)
    assert stream_writes(50, audience=False) == StreamWrites(0, False)
    # S=1: the create, then the audience one latency later
    assert writes_seconds([one], 400, 0.15) == pytest.approx(0.30)
    # S=300: 600 calls, two windows; the 300 creates fit in the first
    assert writes_seconds([one] * 300, 400, 0.15) == pytest.approx(60.15)
    # S=500: 1,000 calls, three windows; creates in the first two, audiences last
    assert writes_seconds([one] * 500, 400, 0.15) == pytest.approx(120.15)
    # creates without dependents need no second latency
    assert writes_seconds([StreamWrites(0, False)] * 3, 400, 0.15) == 0.15
    # S=900: 1,800 calls in five windows; the creates fit in all but the last
    assert writes_seconds([one] * 900, 400, 0.15) == pytest.approx(240.15)
    assert writes_seconds([one] * 500, 250, 0.15) == pytest.approx(180.15)
    # no quota: one window, so the chain of create then audience
    assert writes_seconds([one] * 500, 0, 0.15) == pytest.approx(0.30)


def test_the_floor_of_the_issue_s_goal_run() -> None:
    account = Account(3000, 3000, 3300, 3300, objects_after=600)
    floor = quota_floor([account], [stream_writes(2000, audience=True)] * 300, latency=0.15)
    # lists' and audiences' pages side by side: 12 pages each
    assert floor.first_listing == pytest.approx(12 * 0.15)
    assert floor.writes == pytest.approx(60.15)
    assert floor.read_back == pytest.approx(14 * 0.15)  # a listing: 28 calls, not 600
    assert floor.seconds == pytest.approx(1.8 + 60.15 + 2.1)
    assert (floor.write_calls, floor.read_calls) == (600, 52)


def test_a_single_stream_in_a_big_account_reads_its_list_and_audience_back_by_id() -> None:
    account = Account(3000, 3000, 3001, 3001, objects_after=2)
    floor = quota_floor([account], [stream_writes(2000, audience=True)], latency=0.15)
    assert floor.first_listing == pytest.approx(12 * 0.15)
    assert floor.writes == pytest.approx(0.30)
    assert floor.read_back == pytest.approx(0.15)  # two gets side by side, not 26 pages
    assert floor.read_calls == 24 + 2
    # 20 streams: 40 gets would be more calls than the 26 pages of a listing
    twenty = Account(3000, 3000, 3020, 3020, objects_after=40)
    floor = quota_floor([twenty], [stream_writes(2000, audience=True)] * 20, latency=0.15)
    assert floor.read_back == pytest.approx(13 * 0.15)
    assert floor.read_calls == 24 + 26


def test_accounts_are_listed_side_by_side_under_one_read_quota() -> None:
    small, big = Account(0, 0, 1, 1), Account(3000, 3000, 3000, 3000)
    floor = quota_floor([small, big], [], latency=0.15)
    assert floor.first_listing == pytest.approx(12 * 0.15)  # the longest chain
    lopsided = Account(3000, 250, 3000, 250)  # the lists' chain is the longer
    assert quota_floor([lopsided], [], latency=0.15).first_listing == pytest.approx(1.8)
    assert floor.writes == 0
    many = [Account(3000, 3000, 3000, 3000)] * 50  # 1,200 pages: the shared window binds
    assert quota_floor(many, [], latency=0.15).first_listing == pytest.approx(60.15)


def simulate(streams: list[StreamWrites], per_minute: int, latency: float) -> float:
    """A feasible schedule: creates with dependents first, then the other creates, then the
    dependents, each admitted as soon as its list's create was answered and the window allows
    (admissions in order, so the window's rule is a_i >= a_(i - R) + 60)."""
    order = sorted(range(len(streams)), key=lambda i: not streams[i].has_dependents)
    calls: list[int | None] = [None for _ in order]  # None: a create
    calls += [i for i in order for _ in range(streams[i].calls - 1)]
    created: dict[int, float] = {}
    admitted: list[float] = []
    for position, stream in enumerate(calls):
        at = latency if stream is None else created[stream] + latency
        if admitted:
            at = max(at, admitted[-1])
        if position >= per_minute:
            at = max(at, admitted[position - per_minute] + 60)
        admitted.append(at)
        if stream is None:
            created[order[position]] = at
    return admitted[-1] if admitted else 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.builds(StreamWrites, st.integers(0, 3), st.booleans()), min_size=0, max_size=60),
    st.integers(1, 25),
    st.sampled_from([0.0, 0.05, 0.15, 1.0]),
)
def test_the_writes_bound_is_never_above_a_feasible_schedule_and_within_a_latency_of_it(
    streams: list[StreamWrites], per_minute: int, latency: float
) -> None:
    bound = writes_seconds(streams, per_minute, latency)
    reached = simulate(streams, per_minute, latency)
    assert bound <= reached + 1e-9
    assert reached <= bound + latency + 1e-9
