"""Mirror mode: make a Pinterest list equal to its stream, using the ledger of confirmed members.

Pinterest cannot list a customer list's members, so the ledger is the only memory of who is
in it. Each chunk enters (or leaves) the ledger only after Pinterest accepted it; a crash at
any point leaves a ledger that the next run's diff completes.
"""

from __future__ import annotations

import time
import typing as t
from collections.abc import Iterator
from contextlib import ExitStack

from target_pinterest_audiences.sink import StreamPlan, StreamRefused
from target_pinterest_audiences.sync import Operation, StreamSync


def _guard(syncer: StreamSync, plan: StreamPlan, known: int, removing: int) -> None:
    limit = syncer.options.max_removal_fraction
    if known and limit < 1.0 and removing > limit * known:
        raise StreamRefused(
            f"Stream '{plan.stream}' was refused and nothing was sent for it: mirror mode would "
            f"remove {removing} of the {known} members the ledger knows for this list "
            f"({removing / known:.0%}), more than max_removal_fraction={limit}. If the upstream "
            "query is right, raise max_removal_fraction (1.0 turns the guard off) for this run."
        )


def sync_mirror(syncer: StreamSync, plan: StreamPlan) -> dict[str, t.Any]:
    started = time.monotonic()
    ledger = syncer.ledger
    account = syncer.options.ad_account_id
    chunk = syncer.options.records_per_request
    wait = syncer.options.lock_wait_seconds
    lock_key = f"list:{plan.segment_id}" if plan.segment_id else f"name:{plan.segment_name}"
    with ExitStack() as locks:
        locks.enter_context(ledger.lock(account, lock_key, wait_seconds=wait))
        resolved = syncer.find_list(plan)
        if resolved is not None and lock_key != f"list:{resolved.id}":
            # A run naming this list by segment_id locks its id: take that lock too, so that
            # runs by name and by id on one list never interleave their ledger updates.
            locks.enter_context(ledger.lock(account, f"list:{resolved.id}", wait_seconds=wait))
        if plan.adds.count == 0:
            known = ledger.count(account, resolved.id) if resolved else 0
            raise StreamRefused(
                f"Stream '{plan.stream}' was refused and nothing was sent for it: in mirror mode "
                f"an empty stream would empty the list (remove all {known} members the ledger "
                "knows for it). If that is really wanted, remove the members with "
                "sync_mode=explicit and action=remove."
            )
        added = removed = 0
        if resolved is None:
            first = next(plan.adds.chunks(chunk))
            resolved = syncer.create_list(plan, first)
            locks.enter_context(ledger.lock(account, f"list:{resolved.id}", wait_seconds=wait))
            ledger.confirm_added(account, resolved.id, b"".join(first))
            added = len(first)
            syncer.logger.info(
                "Stream '%s': created customer list %s (%s).",
                plan.stream,
                resolved.id,
                resolved.list_type,
            )
        list_id = resolved.id
        mirror_plan = ledger.diff(account, list_id, plan.adds.blobs(50_000))
        try:
            if mirror_plan.known_count == 0 and resolved.existed and resolved.uploaded_records:
                syncer.logger.warning(
                    "Stream '%s': customer list %s already has members this target did not "
                    "add (%d uploaded records). They are not known to the ledger and will not "
                    "be removed.",
                    plan.stream,
                    list_id,
                    resolved.uploaded_records,
                )
            _guard(syncer, plan, mirror_plan.known_count, mirror_plan.remove_count)
            syncer.logger.info(
                "Stream '%s': mirror plan for list %s: %d desired, %d known, %d to add, "
                "%d to remove.",
                plan.stream,
                list_id,
                mirror_plan.desired_count,
                mirror_plan.known_count,
                mirror_plan.add_count,
                mirror_plan.remove_count,
            )

            def batches() -> Iterator[tuple[Operation, bytes]]:
                for batch in mirror_plan.adds(chunk):
                    yield "ADD", batch
                for batch in mirror_plan.removes(chunk):
                    yield "REMOVE", batch

            def confirm(operation: Operation, batch: bytes) -> None:
                if operation == "ADD":
                    ledger.confirm_added(account, list_id, batch)
                else:
                    ledger.confirm_removed(account, list_id, batch)

            accepted = syncer.send_members(
                list_id,
                batches(),
                on_accepted=confirm,
                stream=plan.stream,
                total=mirror_plan.add_count + mirror_plan.remove_count,
            )
        finally:
            mirror_plan.close()
        added += accepted["ADD"]
        removed = accepted["REMOVE"]
        audience_id = syncer.attach_audience(plan, resolved)
    entry = syncer.state_entry(plan, resolved, audience_id, added, removed)
    syncer.log_summary(plan, entry, started)
    return entry
