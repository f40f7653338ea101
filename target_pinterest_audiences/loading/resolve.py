"""Find or create a stream's customer list and its CUSTOMER_LIST audience, never twice.

Lists and audiences are found in the run's `AccountIndex` (the account read once). Both follow
one rule (`create_once`): create, and when the answer to a create was lost (the connection
dropped after the request may have reached Pinterest), look the object up in a fresh read of
the account before creating again; a create that timed out may still land, so an empty answer
is trusted only after looking again for a while.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

from target_pinterest_audiences.errors import StreamFailed, StreamRefused
from target_pinterest_audiences.loading.account import (
    AccountIndex,
    Kind,
    Noted,
    most_recent_list,
)
from target_pinterest_audiences.loading.sender import DIGEST_SIZE, CallSize, exceptions_by_code
from target_pinterest_audiences.pinterest import (
    PinterestApiError,
    PinterestClient,
    PinterestError,
    RequestTooLarge,
    WriteOutcomeUnknown,
)

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.settings import StreamSettings

_T = t.TypeVar("_T")
CREATE_ATTEMPTS = 3


@dataclass(frozen=True)
class ResolvedList:
    """A customer list the stream loads into, as Pinterest described it."""

    id: str
    name: str | None
    existed: bool  # False: this run created it
    list_type: str
    uploaded_records: int = 0  # Pinterest's counters, which grow with every record sent
    removed_records: int = 0
    # Records the create's answer said Pinterest could not use, by code (created lists only).
    exceptions: t.Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Created(t.Generic[_T]):
    value: _T
    recovered: bool  # found by looking up after the create's answer was lost


def create_once(
    create: Callable[[], _T],
    look_up: Callable[[], _T | None],
    *,
    settle_seconds: float,
    on_lost: Callable[[], None],
) -> Created[_T] | None:
    """Create; when the answer was lost, look up (and again while it may land) before retrying.

    None when every attempt's answer was lost and nothing was found.
    """
    for _attempt in range(CREATE_ATTEMPTS):
        try:
            return Created(create(), recovered=False)
        except WriteOutcomeUnknown:
            on_lost()
            found = look_again(look_up, settle_seconds)
            if found is not None:
                return Created(found, recovered=True)
    return None


def look_again(look_up: Callable[[], _T | None], settle_seconds: float) -> _T | None:
    """`look_up()`, repeated with growing pauses for up to `settle_seconds` while it finds
    nothing."""
    found = look_up()
    waited, pause = 0.0, settle_seconds / 16
    while found is None and waited < settle_seconds:
        step = min(pause, settle_seconds - waited)
        time.sleep(step)
        waited += step
        pause *= 2
        found = look_up()
    return found


@dataclass(frozen=True)
class Where:
    """Where a stream's objects live: its account's client (with the stream's own counters),
    the run's index of that account, and (once the stream holds its list's lock; None in a dry
    run) the creates the ledger noted, by this run or another."""

    client: PinterestClient
    index: AccountIndex
    noted: Noted | None = None

    @property
    def account(self) -> str:
        return self.client.ad_account_id

    def catch_up(self, kind: str, key: str, listing: Kind) -> None:
        """Bring the index up to what the ledger noted of ``kind`` by ``key``: read by id what
        another run created since the index was read; read the listing again when a create is
        pending (its sender may have died after Pinterest took it). Nothing when the ledger
        noted nothing, or the index has it already."""
        noted = self.noted.last(kind, key) if self.noted is not None else None
        if noted is None:
            return
        if noted.object_id is None:
            self.index.refresh(listing)
            return
        known = (
            self.index.list_by_id(noted.object_id)
            if listing == "lists"
            else self.index.audience(noted.object_id)
        )
        if known is not None:
            return
        read = self.client.get_customer_list if listing == "lists" else self.client.get_audience
        try:
            self.index.remember(listing, read(noted.object_id))
        except PinterestApiError as error:
            if error.status != 404:  # gone since (deleted in Ads Manager): nothing to learn
                raise

    def create(
        self,
        kind: str,
        key: str,
        create: Callable[[], dict[str, t.Any]],
        look_up: Callable[[], dict[str, t.Any] | None],
        *,
        settle_seconds: float,
        on_lost: Callable[[], None],
    ) -> Created[dict[str, t.Any]] | None:
        """`create_once`, noted in the ledger: before it is sent, then with the id it landed as.
        A refusal clears the note; a create whose answers were all lost leaves it pending, for
        the next run to look up."""
        noted = self.noted
        if noted is not None:
            noted.creating(kind, key)
        try:
            created = create_once(create, look_up, settle_seconds=settle_seconds, on_lost=on_lost)
        except PinterestApiError:
            if noted is not None:
                noted.created(kind, key, None)
            raise
        if created is not None and noted is not None:
            noted.created(kind, key, str(created.value["id"]))
        return created


class Lists:
    """Customer lists: by `segment_id`, else by exact name (the most recent), else created."""

    def __init__(self, logger: logging.Logger, *, settle_seconds: float) -> None:
        self.logger = logger
        self.settle_seconds = settle_seconds

    def find(self, plan: StreamPlan, where: Where) -> ResolvedList | None:
        if plan.segment_id is not None:
            return _resolved(self._by_id(plan, where), plan.list_type)
        name = t.cast(str, plan.segment_name)
        where.catch_up("list", name, "lists")
        matches = where.index.lists_named(name)
        found = most_recent_list(matches)
        if found is None:
            return None
        if len(matches) > 1:
            self.logger.warning(
                "Stream '%s': %d customer lists are named %r; using the most recent (id %s).",
                plan.stream,
                len(matches),
                plan.segment_name,
                found["id"],
            )
        return _resolved(found, plan.list_type)

    def _by_id(self, plan: StreamPlan, where: Where) -> dict[str, t.Any]:
        """The list the stream names by id: from the index, else read by id (a list the
        index does not hold, or a segment_id that is wrong)."""
        found = where.index.list_by_id(t.cast(str, plan.segment_id))
        if found is not None:
            return found
        try:
            found = where.client.get_customer_list(t.cast(str, plan.segment_id))
        except PinterestApiError as error:
            if error.status == 404:
                raise StreamRefused(
                    f"Stream '{plan.stream}': segment_id {plan.segment_id} is not a customer "
                    f"list of ad account {where.account} (Pinterest answered "
                    f"{error.status}: {error.api_message}). Check the segment_id column, "
                    "or leave it empty to create or reuse a list by segment_name."
                ) from None
            raise
        where.index.remember("lists", found)
        return found

    def create(
        self, plan: StreamPlan, where: Where, first: bytes, size: CallSize
    ) -> tuple[ResolvedList, bytes]:
        """Create the list with its first members (at most one list, whatever happens).

        Returns the list and the members of `first` the create did not carry (a 413 made the
        call smaller): the caller sends those next.
        """
        while True:
            limit = size.limit * DIGEST_SIZE
            head, leftover = first[:limit], first[limit:]
            try:
                return self._create(plan, where, head), leftover
            except RequestTooLarge as refused:
                size.shrink(refused, len(head) // DIGEST_SIZE)

    def _create(self, plan: StreamPlan, where: Where, first: bytes) -> ResolvedList:
        name = t.cast(str, plan.segment_name)

        def lost() -> None:
            # Pinterest may have created it before the connection dropped: look, don't guess.
            self.logger.warning(
                "Stream '%s': the answer to creating customer list %r was lost; "
                "looking it up before trying again.",
                plan.stream,
                name,
            )

        def look_up() -> dict[str, t.Any] | None:
            where.index.refresh("lists")  # a fresh read, not what the index held
            return most_recent_list(where.index.lists_named(name))

        created = where.create(
            "list",
            name,
            lambda: where.client.create_customer_list(name, plan.list_type, first),
            look_up,
            settle_seconds=self.settle_seconds,
            on_lost=lost,
        )
        if created is None:
            raise StreamFailed(
                f"Stream '{plan.stream}': creating customer list {name!r} failed three times "
                "with the answer lost; check the network path to the Pinterest API and run again."
            )
        where.index.remember("lists", created.value)
        resolved = _resolved(created.value, plan.list_type, existed=False)
        if not created.recovered:
            resolved = dataclasses.replace(resolved, exceptions=exceptions_by_code(created.value))
        else:
            # Its first members may or may not have been applied: send them again (a set).
            where.client.update_customer_list(resolved.id, "ADD", first)
        return resolved


class Audiences:
    """The CUSTOMER_LIST audience of a list: reused (unless Pinterest removed it), else created."""

    def __init__(self, logger: logging.Logger, *, settle_seconds: float) -> None:
        self.logger = logger
        self.settle_seconds = settle_seconds

    def attach(
        self, plan: StreamPlan, resolved: ResolvedList, settings: StreamSettings, where: Where
    ) -> dict[str, t.Any] | None:
        """The audience (as Pinterest describes it); None while Pinterest says the list is too
        small (a later run attaches it). Any other refusal fails the stream with Pinterest's
        words."""
        index = where.index
        where.catch_up("audience", resolved.id, "audiences")
        existing = index.audience_of(resolved.id)  # REMOVED ones left out
        if existing is not None:
            return self._align(plan, existing, settings, where)
        name = (
            settings.audience_name
            or resolved.name
            or plan.segment_name
            or f"Customer list {resolved.id}"
        )

        def lost() -> None:
            self.logger.warning(
                "Stream '%s': the answer to creating the audience was lost; looking it up.",
                plan.stream,
            )

        def look_up() -> dict[str, t.Any] | None:
            index.refresh("audiences")  # a fresh read, not what the index held
            return index.audience_of(resolved.id)

        try:
            created = where.create(
                "audience",
                resolved.id,
                lambda: where.client.create_audience(
                    name, resolved.id, settings.audience_description
                ),
                look_up,
                settle_seconds=self.settle_seconds,
                on_lost=lost,
            )
        except PinterestApiError as error:
            if not self._too_small(resolved.id, error, where):
                raise StreamFailed(
                    f"Stream '{plan.stream}': the customer list {resolved.id} is synced, but "
                    f"{error}. Check that the token may create audiences in ad account "
                    f"{where.account} (scope ads:write) and Pinterest's code and "
                    "message above; the next run attaches the audience once that is fixed."
                ) from None
            self.logger.warning(
                "Stream '%s': Pinterest will not attach an audience to customer list %s yet: "
                "the list has too few matched users (%s: %s; Pinterest needs at least 100). "
                "The list is synced; a later run attaches the audience.",
                plan.stream,
                resolved.id,
                error.code,
                error.api_message,
            )
            return None
        if created is None:
            # Not Pinterest saying the list is too small: an audience_id of null would claim so.
            raise StreamFailed(
                f"Stream '{plan.stream}': the customer list {resolved.id} is synced, but "
                "creating its audience failed three times with the answer lost; check the "
                "network path to the Pinterest API and run again (the next run attaches it)."
            )
        index.remember("audiences", created.value)
        return created.value

    def _too_small(self, list_id: str, error: PinterestApiError, where: Where) -> bool:
        """Pinterest says the list is too small: in the refusal's words, or the list's status."""
        if "too small" in (error.api_message or "").lower():
            return True
        try:
            status = where.client.get_customer_list(list_id).get("status")
        except PinterestError:
            return False
        return status == "TOO_SMALL"

    def _align(
        self,
        plan: StreamPlan,
        audience: dict[str, t.Any],
        settings: StreamSettings,
        where: Where,
    ) -> dict[str, t.Any]:
        """Give an existing audience the configured name and description, where they differ."""
        name = settings.audience_name
        description = settings.audience_description
        changes = {
            "name": name if name is not None and name != audience.get("name") else None,
            "description": (
                description
                if description is not None and description != audience.get("description")
                else None
            ),
        }
        if changes["name"] is None and changes["description"] is None:
            return audience
        updated = where.client.update_audience(str(audience["id"]), **changes)
        where.index.remember("audiences", updated)
        self.logger.info(
            "Stream '%s': audience %s now has the configured %s.",
            plan.stream,
            audience["id"],
            " and ".join(key for key, value in changes.items() if value is not None),
        )
        return updated


def _resolved(found: dict[str, t.Any], list_type: str, *, existed: bool = True) -> ResolvedList:
    return ResolvedList(
        id=str(found["id"]),
        name=found.get("name"),
        existed=existed,
        list_type=str(found.get("list_type") or list_type),
        uploaded_records=int(found.get("num_uploaded_user_records") or 0),
        removed_records=int(found.get("num_removed_user_records") or 0),
    )
