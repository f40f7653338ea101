"""Turn one stream's plan into Pinterest calls: resolve the list, send members, attach the audience.

Order of effects, chosen so that a crash at any point is repaired by running again:
1. find the list (by id, else by exact name) or create it with the first chunk of members;
   a create whose answer was lost is followed by a lookup by name, never a blind second create;
2. send ADD and REMOVE chunks, several in flight within the write quota; membership is a
   set, so a chunk retried after a lost answer does no harm (mirror mode records each chunk
   in its ledger only once Pinterest accepted it);
3. find or create the CUSTOMER_LIST audience (same lookup-before-create rule).
The caller writes STATE only after all of it was accepted.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from target_pinterest_audiences.members import DIGEST_SIZE
from target_pinterest_audiences.pinterest import (
    PinterestApiError,
    PinterestClient,
    WriteOutcomeUnknown,
)
from target_pinterest_audiences.progress import SendProgress
from target_pinterest_audiences.sink import StreamPlan, StreamRefused, format_reasons

Operation = Literal["ADD", "REMOVE"]
_Found = TypeVar("_Found")

# Pinterest refuses an audience for a list with too few matched users with a 4xx like this;
# the list is fine and a later run attaches the audience.
_AUDIENCE_NOT_YET_STATUSES = frozenset({400, 409, 422})


@dataclass
class SyncOptions:
    ad_account_id: str
    records_per_request: int = 10_000
    calls_in_flight: int = 4
    dry_run: bool = False
    mirror: bool = False
    max_removal_fraction: float = 0.5
    # After a create whose answer was lost finds nothing, look again over this many seconds
    # before creating again: a slow create (the read timed out) may still land.
    lost_create_settle: float = 30.0
    progress_interval: float = 30.0
    # Mirror mode: how long to wait for another run's lock on the same list before failing.
    lock_wait_seconds: float = 30.0


@dataclass
class ResolvedList:
    id: str
    name: str | None
    existed: bool
    list_type: str
    uploaded_records: int = 0


class StreamSync:
    """Syncs one stream's plan to Pinterest; returns the STATE entry for it."""

    def __init__(
        self,
        client: PinterestClient,
        options: SyncOptions,
        logger: logging.Logger,
        ledger: Any = None,
    ) -> None:
        self.client = client
        self.options = options
        self.logger = logger
        self.ledger = ledger
        self.calls = 0
        self._stats_at_start = client.stats.snapshot()

    # ---- lists ---------------------------------------------------------------------------

    def find_list(self, plan: StreamPlan) -> ResolvedList | None:
        if plan.segment_id is not None:
            try:
                found = self.client.get_customer_list(plan.segment_id)
            except PinterestApiError as error:
                if error.status == 404:
                    raise StreamRefused(
                        f"Stream '{plan.stream}': segment_id {plan.segment_id} is not a customer "
                        f"list of ad account {self.options.ad_account_id} (Pinterest answered "
                        f"{error.status}: {error.api_message}). Check the segment_id column, "
                        "or leave it empty to create or reuse a list by segment_name."
                    ) from None
                raise
            return _resolved(found, plan.list_type)
        assert plan.segment_name is not None
        matches = self.client.find_customer_lists_by_name(plan.segment_name)
        if not matches:
            return None
        if len(matches) > 1:
            self.logger.warning(
                "Stream '%s': %d customer lists are named %r; using the most recent (id %s).",
                plan.stream,
                len(matches),
                plan.segment_name,
                _most_recent(matches)["id"],
            )
        return _resolved(_most_recent(matches), plan.list_type)

    def create_list(self, plan: StreamPlan, first_chunk: list[bytes]) -> ResolvedList:
        assert plan.segment_name is not None
        blob = b"".join(first_chunk)
        for _attempt in range(3):
            try:
                created = self.client.create_customer_list(plan.segment_name, plan.list_type, blob)
                self.calls += 1
                return _resolved(created, plan.list_type, existed=False)
            except WriteOutcomeUnknown:
                # Pinterest may have created it before the connection dropped: look, don't guess.
                self.logger.warning(
                    "Stream '%s': the answer to creating customer list %r was lost; "
                    "looking it up before trying again.",
                    plan.stream,
                    plan.segment_name,
                )
                matches = self._look_again(
                    self.client.find_customer_lists_by_name, plan.segment_name
                )
                if matches:
                    resolved = _resolved(_most_recent(matches), plan.list_type, existed=False)
                    # Its first chunk may or may not have been applied: send it again (a set).
                    self._send_chunk(resolved.id, "ADD", first_chunk)
                    return resolved
        raise StreamRefused(
            f"Stream '{plan.stream}': creating customer list {plan.segment_name!r} failed three "
            "times with the answer lost; check the network path to the Pinterest API and run again."
        )

    def _look_again(self, find: Callable[[str], _Found], key: str) -> _Found:
        """Look up what a create whose answer was lost may have made.

        A create that timed out may still be running at Pinterest and land a moment later,
        so an empty answer is not trusted at once: look again with growing pauses for up to
        ``lost_create_settle`` seconds before the caller creates again.
        """
        found = find(key)
        settle = self.options.lost_create_settle
        waited, pause = 0.0, settle / 16
        while not found and waited < settle:
            step = min(pause, settle - waited)
            time.sleep(step)
            waited += step
            pause *= 2
            found = find(key)
        return found

    # ---- members -------------------------------------------------------------------------

    def _send_chunk(self, list_id: str, operation: Operation, chunk: list[bytes] | bytes) -> int:
        # A chunk is a list of digests, or (explicit mode) one blob of concatenated digests.
        blob = chunk if isinstance(chunk, bytes) else b"".join(chunk)
        self.client.update_customer_list(list_id, operation, blob)
        self.calls += 1
        return len(blob) // DIGEST_SIZE

    def send_members(
        self,
        list_id: str,
        batches: Iterator[tuple[Operation, list[bytes]]] | Iterator[tuple[Operation, bytes]],
        on_accepted: Callable[[Operation, bytes], None] | None = None,
        *,
        stream: str = "",
        total: int = 0,
    ) -> dict[str, int]:
        """Send (operation, chunk) pairs with a few calls in flight; count accepted members.

        Chunks are pulled lazily so that only ``calls_in_flight`` of them are in memory.
        ``on_accepted`` runs in this thread, in completion order, after Pinterest accepted.
        """
        accepted = {"ADD": 0, "REMOVE": 0}
        in_flight: dict[Future[int], tuple[Operation, Any]] = {}
        limit = self.options.calls_in_flight
        progress = SendProgress(self.logger, stream, total, self.options.progress_interval)
        with (
            progress,
            ThreadPoolExecutor(max_workers=limit, thread_name_prefix="pinterest-call") as pool,
        ):
            try:
                for operation, chunk in batches:
                    while len(in_flight) >= limit:
                        self._collect(in_flight, accepted, on_accepted, progress)
                    future = pool.submit(self._send_chunk, list_id, operation, chunk)
                    in_flight[future] = (operation, chunk)
                    progress.in_flight = len(in_flight)
                while in_flight:
                    self._collect(in_flight, accepted, on_accepted, progress)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        return accepted

    @staticmethod
    def _collect(
        in_flight: dict[Future[int], tuple[Operation, Any]],
        accepted: dict[str, int],
        on_accepted: Callable[[Operation, bytes], None] | None,
        progress: SendProgress,
    ) -> None:
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            operation, chunk = in_flight.pop(future)
            count = future.result()  # re-raises the call's error
            accepted[operation] += count
            progress.sent += count
            progress.calls += 1
            if on_accepted is not None:
                on_accepted(operation, chunk)
        progress.in_flight = len(in_flight)

    # ---- audience ------------------------------------------------------------------------

    def attach_audience(self, plan: StreamPlan, resolved: ResolvedList) -> str | None:
        existing = self.client.find_customer_list_audience(resolved.id)
        if existing is not None:
            return str(existing["id"])
        name = resolved.name or plan.segment_name or f"Customer list {resolved.id}"
        for _attempt in range(3):
            try:
                created = self.client.create_audience(name, resolved.id)
                self.calls += 1
                return str(created["id"])
            except WriteOutcomeUnknown:
                self.logger.warning(
                    "Stream '%s': the answer to creating the audience was lost; looking it up.",
                    plan.stream,
                )
                existing = self._look_again(self.client.find_customer_list_audience, resolved.id)
                if existing is not None:
                    return str(existing["id"])
            except PinterestApiError as error:
                if error.status in _AUDIENCE_NOT_YET_STATUSES:
                    self.logger.warning(
                        "Stream '%s': Pinterest will not attach an audience to customer list %s "
                        "yet (%s: %s); the list is synced, a later run attaches the audience.",
                        plan.stream,
                        resolved.id,
                        error.code,
                        error.api_message,
                    )
                    return None
                raise
        return None

    # ---- the whole stream ----------------------------------------------------------------

    def sync(self, plan: StreamPlan) -> dict[str, Any]:
        started = time.monotonic()
        chunk = self.options.records_per_request
        resolved = self.find_list(plan)
        added = removed = 0
        if resolved is None:
            first = next(plan.adds.chunks(chunk), None)
            if first is None:
                self.logger.warning(
                    "Stream '%s': no list named %r exists and the stream adds nobody; "
                    "nothing to do.",
                    plan.stream,
                    plan.segment_name,
                )
                return self.state_entry(plan, None, None, 0, 0)
            resolved = self.create_list(plan, first)
            self.logger.info(
                "Stream '%s': created customer list %s (%s).",
                plan.stream,
                resolved.id,
                resolved.list_type,
            )
            added = len(first)
            batches = _operations(plan, chunk, skip_first_add=True)
        else:
            self.logger.info(
                "Stream '%s': reusing customer list %s (%r).",
                plan.stream,
                resolved.id,
                resolved.name,
            )
            batches = _operations(plan, chunk, skip_first_add=False)
        accepted = self.send_members(
            resolved.id, batches, stream=plan.stream, total=plan.adds.count + plan.removes.count
        )
        added += accepted["ADD"]
        removed += accepted["REMOVE"]
        audience_id = self.attach_audience(plan, resolved)
        entry = self.state_entry(plan, resolved, audience_id, added, removed)
        self.log_summary(plan, entry, started)
        return entry

    def log_summary(self, plan: StreamPlan, entry: dict[str, Any], started: float) -> None:
        """The one line per stream a user reads after a run."""
        stats = self.client.stats.snapshot()
        self.logger.info(
            "Summary: stream '%s' synced in %.1fs: %d rows, %d invalid (%s), %d added, "
            "%d removed, %d write calls (%.1fs waiting for the quota), %d retries; "
            "list %s, audience %s.",
            plan.stream,
            time.monotonic() - started,
            plan.rows,
            plan.records_invalid,
            format_reasons(plan.invalid_by_reason),
            entry["records_added"],
            entry["records_removed"],
            stats["writes"] - self._stats_at_start["writes"],
            stats["pacer_wait_seconds"] - self._stats_at_start["pacer_wait_seconds"],
            stats["retries"] - self._stats_at_start["retries"],
            entry["customer_list_id"],
            entry["audience_id"],
        )

    def state_entry(
        self,
        plan: StreamPlan,
        resolved: ResolvedList | None,
        audience_id: str | None,
        added: int,
        removed: int,
    ) -> dict[str, Any]:
        return {
            "ad_account_id": self.options.ad_account_id,
            "segment_name": (resolved.name if resolved else None) or plan.segment_name,
            "customer_list_id": resolved.id if resolved else None,
            "audience_id": audience_id,
            "list_type": resolved.list_type if resolved else plan.list_type,
            "records_added": added,
            "records_removed": removed,
            "records_invalid": plan.records_invalid,
            "invalid_by_reason": dict(sorted(plan.invalid_by_reason.items())),
            "synced_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _operations(
    plan: StreamPlan, chunk: int, *, skip_first_add: bool
) -> Iterator[tuple[Operation, bytes]]:
    adds = plan.adds.blobs(chunk)
    if skip_first_add:
        next(adds, None)
    for blob in adds:
        yield "ADD", blob
    for blob in plan.removes.blobs(chunk):
        yield "REMOVE", blob


def _most_recent(lists: list[dict[str, Any]]) -> dict[str, Any]:
    return max(lists, key=lambda item: (item.get("created_time") or 0, int(item.get("id") or 0)))


def _resolved(found: dict[str, Any], list_type: str, *, existed: bool = True) -> ResolvedList:
    return ResolvedList(
        id=str(found["id"]),
        name=found.get("name"),
        existed=existed,
        list_type=str(found.get("list_type") or list_type),
        uploaded_records=int(found.get("num_uploaded_user_records") or 0),
    )
