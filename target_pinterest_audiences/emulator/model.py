"""The emulated account data: customer lists, audiences, tokens, and their JSON persistence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from .outcome import ApiError, Json
from .tokens import Tokens

FIRST_ID = 549755813888  # ids look like Pinterest's: large, increasing
STATE_VERSION = 2  # 2: matching figures, exceptions, token scopes; 1 still loads


@dataclass
class CustomerList:
    id: str
    ad_account_id: str
    name: str
    list_type: str
    members: set[str]
    created_time: int
    updated_time: int
    num_batches: int = 1
    num_uploaded_user_records: int = 0
    num_removed_user_records: int = 0
    exceptions: Json = field(default_factory=dict)
    matched: int = 0  # members matched to Pinterest users, now
    last_matched: int | None = None  # as of the last finished matching (None: none yet)
    processing_until: float = 0.0  # unix time when the current matching finishes


@dataclass
class Audience:
    id: str
    ad_account_id: str
    name: str
    audience_type: str
    rule: Json
    description: str | None
    created_timestamp: int
    updated_timestamp: int
    status: str | None = None  # None: follows its list's matching; else fixed (REMOVED)


class Model:
    """Lists and audiences by ad account, the id counter, and the tokens.

    Not thread-safe on its own: the emulator calls it under its lock.
    """

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.next_id = FIRST_ID
        self.lists: dict[str, dict[str, CustomerList]] = {}
        self.audiences: dict[str, dict[str, Audience]] = {}

    def clear(self) -> None:
        self.next_id = FIRST_ID
        self.lists.clear()
        self.audiences.clear()

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    # ---- lists

    def create_list(self, account: str, name: str, list_type: str, *, now: int) -> CustomerList:
        """A new, empty list (the caller applies the first upload)."""
        c = CustomerList(
            id=self.new_id(),
            ad_account_id=account,
            name=name,
            list_type=list_type,
            members=set(),
            created_time=now,
            updated_time=now,
        )
        self.lists.setdefault(account, {})[c.id] = c
        return c

    def get_list(self, account: str, list_id: str) -> CustomerList:
        c = self.lists.get(account, {}).get(list_id)
        if c is None:
            raise ApiError(404, 404, f"Customer list {list_id} not found.")
        return c

    def find_list(self, account: str, list_id: str) -> CustomerList | None:
        return self.lists.get(account, {}).get(list_id)

    def find_list_anywhere(self, list_id: str) -> CustomerList | None:
        """The list with this id in any ad account (ids are unique in the emulator)."""
        return next((c for acc in self.lists.values() if (c := acc.get(list_id))), None)

    def lists_of(self, account: str) -> list[CustomerList]:
        """An ad account's lists, ascending by id."""
        return sorted(self.lists.get(account, {}).values(), key=lambda c: int(c.id))

    def all_lists(self) -> Iterator[CustomerList]:
        """Every list, by ad account then ascending id."""
        for account in sorted(self.lists):
            yield from self.lists_of(account)

    # ---- audiences

    def create_audience(
        self,
        account: str,
        name: str,
        audience_type: str,
        rule: Json,
        description: str | None,
        *,
        now: int,
    ) -> Audience:
        a = Audience(
            id=self.new_id(),
            ad_account_id=account,
            name=name,
            audience_type=audience_type,
            rule=dict(rule),
            description=description,
            created_timestamp=now,
            updated_timestamp=now,
        )
        self.audiences.setdefault(account, {})[a.id] = a
        return a

    def get_audience(self, account: str, audience_id: str) -> Audience:
        a = self.audiences.get(account, {}).get(audience_id)
        if a is None:
            raise ApiError(404, 2601, f"Audience {audience_id} not found.")
        return a

    def audiences_of(self, account: str) -> list[Audience]:
        """An ad account's audiences, ascending by id."""
        return sorted(self.audiences.get(account, {}).values(), key=lambda a: int(a.id))

    def all_audiences(self) -> Iterator[Audience]:
        for account in sorted(self.audiences):
            yield from self.audiences_of(account)

    # ---- persistence

    def dump(self) -> Json:
        """Persistent state (lists, audiences, tokens, id counter) for ``load``."""
        return {
            "version": STATE_VERSION,
            "next_id": self.next_id,
            "lists": [
                {**asdict(c), "members": sorted(c.members)}
                for account in self.lists.values()
                for c in account.values()
            ],
            "audiences": [asdict(a) for acc in self.audiences.values() for a in acc.values()],
            **self.tokens.dump(),
        }

    def load(
        self,
        data: Json,
        *,
        count_matched: Callable[[set[str]], int],
        default_scopes: frozenset[str],
    ) -> None:
        """State from ``dump``. A version 1 file (before matching and scopes) loads as lists
        matched already (by ``count_matched``) and tokens with ``default_scopes``."""
        version = data.get("version")
        if version not in (1, STATE_VERSION):
            raise ValueError("unsupported emulator state file version")
        self.lists.clear()
        self.audiences.clear()
        for raw in data.get("lists", []):
            c = CustomerList(**{**raw, "members": set(raw["members"])})
            if version == 1:
                c.matched = c.last_matched = count_matched(c.members)
            self.lists.setdefault(c.ad_account_id, {})[c.id] = c
        for raw in data.get("audiences", []):
            a = Audience(**raw)
            if version == 1 and a.status == "READY":
                a.status = None  # version 1 stored READY for every audience it had not removed
            self.audiences.setdefault(a.ad_account_id, {})[a.id] = a
        self.next_id = int(data.get("next_id", FIRST_ID))
        self.tokens.load(data, default_scopes=default_scopes)
