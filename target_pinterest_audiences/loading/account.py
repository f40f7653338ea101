"""One ad account as the run knows it: its customer lists and audiences, read once per run.

Pinterest's list calls cannot filter by name or type, so finding one list means reading every
page of the account. A run reads each account it touches once, at the start (every page of
customer lists and of audiences, 250 a page), and every stream finds its list and its audience
here; what the run creates or changes enters the index as it happens.

The index may be stale for what others did since it was read. Where that matters it is read
again, never trusted: a create whose answer was lost is looked up in a fresh read of the
account (`refresh`); fresh reads asked for at about the same time by several streams are one
read (`refresh` coalesces them), so a burst of lost answers costs one listing, not one per
stream. And another run of this target may have created a list, audience or lookalike after
this run read the account: every create is noted in the ledger (`Noted`) before it is sent and
given its id once it landed, so a stream that holds its list's lock learns of it there, and
reads Pinterest only for what it learns of (one read by id; a fresh listing when a create is
still pending, its sender having died).
"""

from __future__ import annotations

import contextlib
import threading
import time
import typing as t
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger import Ledger
    from target_pinterest_audiences.ledger.base import Created

Item = dict[str, t.Any]
Kind = t.Literal["lists", "audiences"]
PAGE_SIZE = 250  # the most Pinterest's list calls give in a page


def most_recent_list(items: Iterable[Item]) -> Item | None:
    """The most recently created of several lists of one name (ties: the highest id)."""
    return max(
        items,
        key=lambda item: (item.get("created_time") or 0, _numeric_id(item)),
        default=None,
    )


def most_recent_audience(items: Iterable[Item]) -> Item | None:
    """The audience with the highest id (Pinterest's ids grow with time)."""
    return max(items, key=_numeric_id, default=None)


def _numeric_id(item: Item) -> int:
    ident = str(item.get("id", ""))
    return int(ident) if ident.isdigit() else -1


def pages(count: int) -> int:
    """Calls one listing of ``count`` items takes (an empty listing is one call too)."""
    return max(1, -(-count // PAGE_SIZE))


@dataclass
class _Listing:
    """One kind of object of the account, by id, and when its last full read began."""

    items: dict[str, Item] = field(default_factory=dict)
    read_at: float = float("-inf")
    # Made or changed by this run since that read: kept when a fresh read misses them
    # (a create may show in listings only a moment later).
    ours: dict[str, Item] = field(default_factory=dict)


class AccountIndex:
    """An ad account's customer lists and audiences, as read at the start of the run.

    Thread-safe. Lists are found by id and by exact name (the most recent of a name);
    CUSTOMER_LIST audiences by their list's id, ACTALIKE audiences by their seed; audiences
    whose status is REMOVED are left out (Pinterest still lists them).
    """

    def __init__(
        self,
        account: str,
        read_all: Callable[[Kind], Iterator[Item]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``read_all(kind)``: every item of one kind, all pages (the client's listing)."""
        self.account = account
        self._read_all = read_all
        self._clock = clock
        self._lock = threading.Lock()
        self._listings: dict[Kind, _Listing] = {"lists": _Listing(), "audiences": _Listing()}
        self._refreshing: dict[Kind, threading.Lock] = {
            "lists": threading.Lock(),
            "audiences": threading.Lock(),
        }
        self._by_name: dict[str, set[str]] = defaultdict(set)
        self._audience_of: dict[str, set[str]] = defaultdict(set)
        self._name_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self.listings = 0  # full reads made, of either kind

    def clock(self) -> float:
        """The index's clock, for `refresh`'s ``since``."""
        return self._clock()

    # ---- reading the account ------------------------------------------------------------

    def load(self) -> AccountIndex:
        """Read both kinds now (the run's first read of the account)."""
        self.refresh("lists")
        self.refresh("audiences")
        return self

    def refresh(self, kind: Kind, *, since: float | None = None) -> None:
        """Read every ``kind`` of the account again, unless a read that began at or after
        ``since`` (a `clock()` value; default: now) has finished meanwhile: callers asking at
        about the same time share one read."""
        asked = self._clock() if since is None else since
        with self._refreshing[kind]:
            if self._listings[kind].read_at >= asked:
                return  # another caller's read began after we asked: it is fresh enough
            started = self._clock()
            items = {str(item["id"]): item for item in self._read_all(kind) if "id" in item}
            with self._lock:
                listing = self._listings[kind]
                listing.items = {**listing.ours, **items}
                listing.read_at = started
                self.listings += 1
                self._reindex(kind)

    def _reindex(self, kind: Kind) -> None:
        items = self._listings[kind].items.values()
        if kind == "lists":
            self._by_name.clear()
            for item in items:
                self._by_name[str(item.get("name"))].add(str(item["id"]))
        else:
            self._audience_of.clear()
            for item in items:
                self._index_audience(item)

    def _index_audience(self, item: Item) -> None:
        rule = item.get("rule") or {}
        if item.get("audience_type") == "CUSTOMER_LIST" and rule.get("customer_list_id"):
            self._audience_of[str(rule["customer_list_id"])].add(str(item["id"]))

    def counts(self) -> tuple[int, int]:
        """How many lists and audiences the account holds, as far as the run knows."""
        with self._lock:
            return len(self._listings["lists"].items), len(self._listings["audiences"].items)

    def listing_calls(self) -> int:
        """Calls one more full read of the account (both kinds) would take."""
        lists, audiences = self.counts()
        return pages(lists) + pages(audiences)

    # ---- lookups ------------------------------------------------------------------------

    def list_by_id(self, list_id: str) -> Item | None:
        with self._lock:
            return self._listings["lists"].items.get(str(list_id))

    def audience(self, audience_id: str) -> Item | None:
        with self._lock:
            return self._listings["audiences"].items.get(str(audience_id))

    def lists_named(self, name: str) -> list[Item]:
        """Every list of exactly this name."""
        with self._lock:
            items = self._listings["lists"].items
            return [items[i] for i in sorted(self._by_name.get(name, ())) if i in items]

    def audience_of(self, list_id: str) -> Item | None:
        """The CUSTOMER_LIST audience built on the list (the most recent), REMOVED left out."""
        with self._lock:
            items = self._listings["audiences"].items
            found = [
                items[i]
                for i in self._audience_of.get(str(list_id), ())
                if i in items and items[i].get("status") != "REMOVED"
            ]
        return most_recent_audience(found)

    def audiences(self, audience_type: str) -> list[Item]:
        """Every audience of a type (REMOVED left out), ascending by id."""
        with self._lock:
            found = [
                item
                for item in self._listings["audiences"].items.values()
                if item.get("audience_type") == audience_type and item.get("status") != "REMOVED"
            ]
        return sorted(found, key=_numeric_id)

    # ---- what the run changes -----------------------------------------------------------

    def remember(self, kind: Kind, item: Item) -> None:
        """A list or audience this run created or changed, as Pinterest answered."""
        ident = str(item["id"])
        with self._lock:
            listing = self._listings[kind]
            listing.items[ident] = item
            listing.ours[ident] = item
            if kind == "lists":
                self._by_name[str(item.get("name"))].add(ident)
            else:
                self._index_audience(item)

    @contextlib.contextmanager
    def claim(self, name: str) -> Iterator[None]:
        """Hold a name while a stream finds or creates the list of that name: two streams of
        one run naming one list never create it twice."""
        with self._lock:
            lock = self._name_locks[name]
        with lock:
            yield


@dataclass(frozen=True)
class Noted:
    """The creates that runs sharing the ledger made in one ad account: ``kind`` "list" by its
    name, "audience" by its list's id, "lookalike" by its seed, country and percentage."""

    ledger: Ledger
    account: str

    def creating(self, kind: str, key: str) -> None:
        self.ledger.note_creating(self.account, kind, key)

    def created(self, kind: str, key: str, object_id: str | None) -> None:
        """It landed as ``object_id``; None: Pinterest refused it (nothing is pending)."""
        self.ledger.note_created(self.account, kind, key, object_id)

    def last(self, kind: str, key: str) -> Created | None:
        return self.ledger.created(self.account, kind, key)
