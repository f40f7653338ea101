"""The quota floor of a many-audience run: the least time Pinterest's quotas and a fixed latency
per call allow for the work the run cannot avoid. Pure functions; `bench_many.py` prints it.

The model (issue 17's plan for a run): each ad account is listed once at the start (every page
of its customer lists and of its audiences: two chains of pages, each page's bookmark coming
with the page before, the two side by side), then the run makes its write calls, then it reads
back what Pinterest made of them: one more listing of each account, or, where that takes fewer
calls (a single stream in a big account, issue 17 point 2), each of the run's lists and
audiences by id, all at once. So

    floor = listing(accounts as they are at the start)
          + writes(all streams, every account)
          + read-back(accounts as they are at the end)

Time is counted in admissions: a call sent at `s` is answered at `s + latency` (the emulator
sleeps the latency, then admits and answers at once), and a quota of R calls a minute admits a
call only while fewer than R calls were admitted in the 60 s before it (a sliding window, as
Pinterest's quotas and the emulator's `quotas.py`). Each phase's figure is a lower bound on
that phase under the model (the proofs are in the docstrings), so the floor is a lower bound
on a run that follows the plan, not on every conceivable run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PAGE_SIZE = 250  # the most items Pinterest's list calls return a page
MINUTE = 60.0
RECORDS_PER_CALL = 10_000  # the target's default records_per_request


@dataclass(frozen=True)
class Account:
    """One ad account's size at the start and at the end of the run, and how many objects
    (the run's lists and audiences in it) a read-back by id would read."""

    lists_before: int
    audiences_before: int
    lists_after: int
    audiences_after: int
    objects_after: int = 0

    @property
    def reads_back_by_id(self) -> bool:
        """Whether reading the run's objects by id takes fewer calls than a listing."""
        return 0 < self.objects_after < self.pages_after

    @property
    def read_back_calls(self) -> int:
        return self.objects_after if self.reads_back_by_id else self.pages_after

    @property
    def pages_before(self) -> int:
        return sum(self.chains_before)

    @property
    def pages_after(self) -> int:
        return sum(self.chains_after)

    @property
    def chains_before(self) -> tuple[int, int]:
        """Pages of the customer lists' listing and of the audiences' at the start."""
        return pages(self.lists_before), pages(self.audiences_before)

    @property
    def chains_after(self) -> tuple[int, int]:
        return pages(self.lists_after), pages(self.audiences_after)


@dataclass(frozen=True)
class StreamWrites:
    """The write calls one stream needs: one list create carrying its first members, then
    `updates` more calls (the rest of its members), and an audience create if `audience`."""

    updates: int
    audience: bool

    @property
    def calls(self) -> int:
        return 1 + self.updates + int(self.audience)

    @property
    def has_dependents(self) -> bool:
        """Whether a call waits for the list's create (it needs the new list's id)."""
        return self.updates > 0 or self.audience


def stream_writes(
    members: int, *, audience: bool, per_call: int = RECORDS_PER_CALL
) -> StreamWrites:
    """A new stream of `members` members: one create with the first `per_call`, one update per
    further `per_call`, and the audience create when its list is big enough (`audience`)."""
    return StreamWrites(max(0, math.ceil(members / per_call) - 1), audience)


def pages(items: int, page_size: int = PAGE_SIZE) -> int:
    """Pages of one list call's every page (an empty one is still one page)."""
    return max(1, math.ceil(items / page_size))


def listing_pages(lists: int, audiences: int, page_size: int = PAGE_SIZE) -> int:
    """Pages of one listing: every page of customer lists and of audiences."""
    return pages(lists, page_size) + pages(audiences, page_size)


def window_seconds(calls: int, per_minute: int, latency: float) -> float:
    """Least time until the last of `calls` calls (sent at 0 or later, no order among them) is
    answered under a sliding window of `per_minute` calls.

    Proof of the bound: order the admissions a_1 <= ... <= a_n. A window of 60 s holds at most
    R of them, so a_(i+R) >= a_i + 60; the first is admitted no earlier than the latency
    (a_1 >= latency). Hence a_n >= latency + (ceil(n / R) - 1) * 60, and sending the calls in
    batches of R a minute apart reaches it. `per_minute` 0: no quota."""
    if calls <= 0:
        return 0.0
    if per_minute <= 0:
        return latency
    return (math.ceil(calls / per_minute) - 1) * MINUTE + latency


def chain_seconds(calls: int, per_minute: int, latency: float) -> float:
    """Least time for `calls` calls made one after another (a listing's pages: each page's
    bookmark comes with the page before), each answered `latency` after it was sent, under a
    sliding window of `per_minute` calls: a_i = max(a_(i-1) + latency, a_(i-R) + 60), exact
    by recurrence."""
    admitted: list[float] = []
    for i in range(calls):
        at = (admitted[-1] if admitted else 0.0) + latency
        if per_minute > 0 and i >= per_minute:
            at = max(at, admitted[i - per_minute] + MINUTE)
        admitted.append(at)
    return admitted[-1] if admitted else 0.0


def listing_seconds(chains: Sequence[int], reads_per_minute: int, latency: float) -> float:
    """Least time for chains of pages side by side (two per account listed: its lists' and its
    audiences') under one shared read quota: the longest chain, and no less than the window
    needs for all the pages together."""
    if not chains:
        return 0.0
    longest = max(chain_seconds(p, reads_per_minute, latency) for p in chains)
    return max(longest, window_seconds(sum(chains), reads_per_minute, latency))


def writes_seconds(
    streams: Sequence[StreamWrites], writes_per_minute: int, latency: float
) -> float:
    """Least time for every stream's writes under one write quota.

    The n = sum of calls need `window_seconds(n)` = latency + (k - 1) * 60 with k = ceil(n / R)
    (see there). A call that needs a new list's id (an update, the audience) waits for that
    list's create to be answered: it is sent no earlier than the create's admission and
    admitted one latency later. When all n fit one window (k = 1), that chain is the bound:
    creates answered at the latency, their dependents one latency later. When they do not
    (k >= 2), the chains fit inside the windows: with D creates that have dependents, n >= 2D,
    and n <= kR, so D <= kR / 2 <= (k - 1) R: every such create can be admitted before the
    last window, whose calls are then all dependents of answered creates. Sending the creates
    with dependents first, then the other creates, then the rest, each as soon as the window
    and its list allow, ends within one latency of the bound (the unit test checks both)."""
    calls = sum(s.calls for s in streams)
    if calls == 0:
        return 0.0
    seconds = window_seconds(calls, writes_per_minute, latency)
    one_window = writes_per_minute <= 0 or calls <= writes_per_minute
    if one_window and any(s.has_dependents for s in streams):
        seconds += latency
    return seconds


def read_back_seconds(accounts: Sequence[Account], reads_per_minute: int, latency: float) -> float:
    """Least time to read back every account side by side under one read quota: a listing as
    two chains of pages (`chain_seconds`), reads by id all at once (one latency); no less than
    the window needs for all of them together."""
    longest = max(
        (
            latency
            if a.reads_back_by_id
            else max(chain_seconds(c, reads_per_minute, latency) for c in a.chains_after)
            for a in accounts
        ),
        default=0.0,
    )
    total = sum(a.read_back_calls for a in accounts)
    return max(longest, window_seconds(total, reads_per_minute, latency))


@dataclass(frozen=True)
class Floor:
    first_listing: float
    writes: float
    read_back: float
    write_calls: int
    read_calls: int  # the first listing and the read-back of every account

    @property
    def seconds(self) -> float:
        return self.first_listing + self.writes + self.read_back


def quota_floor(
    accounts: Sequence[Account],
    streams: Sequence[StreamWrites],
    *,
    latency: float,
    writes_per_minute: int = 400,
    reads_per_minute: int = 1000,
) -> Floor:
    """The floor of a run (see the module's docstring): listing, writes, read-back."""
    before = [chain for a in accounts for chain in a.chains_before]
    return Floor(
        first_listing=listing_seconds(before, reads_per_minute, latency),
        writes=writes_seconds(streams, writes_per_minute, latency),
        read_back=read_back_seconds(accounts, reads_per_minute, latency),
        write_calls=sum(s.calls for s in streams),
        read_calls=sum(before) + sum(a.read_back_calls for a in accounts),
    )
