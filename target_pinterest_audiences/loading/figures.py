"""What Pinterest made of the run, read once at its end: list and audience statuses and sizes.

Per ad account, whichever costs fewer calls: one more listing of the account (every page of its
lists and audiences: one call per 250 objects) or one read per object the run synced (a list,
its audience). A single stream in an account of thousands of lists reads its two objects; three
hundred streams read the account's pages.
"""

from __future__ import annotations

import logging
import typing as t
from concurrent.futures import Executor
from dataclasses import dataclass

from target_pinterest_audiences.loading.report import PinterestFigures
from target_pinterest_audiences.pinterest import PinterestError

if t.TYPE_CHECKING:
    from target_pinterest_audiences.loading.account import AccountIndex
    from target_pinterest_audiences.loading.stream import Synced
    from target_pinterest_audiences.pinterest import PinterestClient

Item = dict[str, t.Any]


def per_object(objects: int, listing_calls: int) -> bool:
    """Read the objects one by one (rather than list the account) when that costs no more."""
    return objects <= listing_calls


@dataclass(frozen=True)
class Read:
    """How the figures of one account were read: "objects" or "listing", in so many calls."""

    how: str
    calls: int


def read_back(
    synced: t.Sequence[Synced],
    *,
    client_of: t.Callable[[str], PinterestClient],
    index_of: t.Callable[[str], AccountIndex],
    pool: Executor,
    logger: logging.Logger,
) -> tuple[dict[str, PinterestFigures], dict[str, Read]]:
    """Pinterest's latest figures by stream (None where it gave none), and how each account
    was read. A failed read is a warning: everything was accepted already, the figures are a
    report, not part of the sync."""
    figures: dict[str, PinterestFigures] = {}
    reads: dict[str, Read] = {}
    by_account: dict[str, list[Synced]] = {}
    for one in synced:
        if one.resolved is not None:
            by_account.setdefault(one.account, []).append(one)
    for account, streams in by_account.items():
        index = index_of(account)
        wanted = {("lists", one.resolved.id) for one in streams if one.resolved is not None}
        wanted |= {("audiences", one.audience_id) for one in streams if one.audience_id}
        wanted |= {
            ("audiences", settled.audience_id)
            for one in streams
            for settled in one.lookalikes or ()
            if settled.audience_id
        }
        try:
            if per_object(len(wanted), index.listing_calls()):
                found = _read_objects(client_of(account), wanted, pool)
                reads[account] = Read("objects", len(wanted))
            else:
                index.refresh("lists")
                index.refresh("audiences")
                found = {}
                for kind, ident in wanted:
                    item = index.list_by_id(ident) if kind == "lists" else index.audience(ident)
                    if item is not None:
                        found[(kind, ident)] = item
                reads[account] = Read("listing", index.listing_calls())
        except PinterestError as error:
            for one in streams:
                logger.warning(
                    "Stream '%s': could not read back what Pinterest made of the upload (%s).",
                    one.plan.stream,
                    error,
                )
            continue
        for one in streams:
            assert one.resolved is not None
            listed = found.get(("lists", one.resolved.id), {})
            audience = found.get(("audiences", one.audience_id or ""), {})
            lookalikes = {
                settled.audience_id: _status_and_size(found.get(("audiences", settled.audience_id)))
                for settled in one.lookalikes or ()
                if settled.audience_id
            }
            status, size = _status_and_size(audience)
            figures[one.plan.stream] = PinterestFigures(
                list_status=listed.get("status"),
                audience_status=status,
                audience_size=size,
                lookalikes=lookalikes,
            )
    return figures, reads


def _read_objects(
    client: PinterestClient, wanted: set[tuple[str, str]], pool: Executor
) -> dict[tuple[str, str], Item]:
    def read(kind: str, ident: str) -> Item:
        if kind == "lists":
            return client.get_customer_list(ident)
        return client.get_audience(ident)

    futures = {key: pool.submit(read, *key) for key in sorted(wanted)}
    return {key: future.result() for key, future in futures.items()}


def _status_and_size(audience: Item | None) -> tuple[str | None, int | None]:
    """An audience's status and size as Pinterest reports them (None where it gives none)."""
    audience = audience or {}
    size = audience.get("size")
    whole = isinstance(size, int) and not isinstance(size, bool)
    return audience.get("status"), size if whole else None
