"""Sync one stream's plan: resolve the list, send its changes, attach the audience.

Order of effects, chosen so that a crash at any point is repaired by running again:
1. find the list (by id, else by exact name) or create it with the first blob of members;
   a create whose answer was lost is followed by a lookup by name, never a blind second create;
2. send ADD and REMOVE calls, several in flight within the write quota; membership is a
   set, so a call retried after a lost answer does no harm (mirror mode records each call
   in its ledger only once Pinterest accepted it);
3. find or create the CUSTOMER_LIST audience (same lookup-before-create rule).
The caller writes STATE only after all of it was accepted. Explicit and mirror mode differ
only in their `Strategy` (locks, and what the changes are); a dry run stops after step 0,
computing the changes, and prints them.
"""

from __future__ import annotations

import itertools
import time
import typing as t
from contextlib import ExitStack
from functools import partial

from target_pinterest_audiences.loading.changes import Explicit, Mirror, Strategy
from target_pinterest_audiences.loading.report import log_summary, print_dry_run, state_entry
from target_pinterest_audiences.loading.resolve import Audiences, Lists, ResolvedList
from target_pinterest_audiences.loading.sender import DIGEST_SIZE, Operation, Sender, Sent
from target_pinterest_audiences.pinterest import PinterestError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.loading.session import Session


class StreamSync:
    """The primitives one stream's sync is made of, built once per run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        settings = session.settings
        tuning = settings.tuning
        client, logger = session.client, session.logger
        settle = tuning.lost_create_settle_seconds
        self.lists = Lists(client, logger, settle_seconds=settle)
        self.audiences = Audiences(client, logger, settle_seconds=settle)
        self.sender = Sender(
            client,
            logger,
            calls_in_flight=tuning.calls_in_flight,
            progress_interval=tuning.progress_interval_seconds,
        )

    def strategy(self, plan: StreamPlan) -> Strategy:
        settings = self.session.settings
        stream_settings = settings.for_stream(plan.stream)
        if not stream_settings.mirror:
            return Explicit()
        return Mirror(
            self.session.ledger(),
            settings.ad_account_id,
            self.session.logger,
            max_removal_fraction=stream_settings.max_removal_fraction,
            lock_wait_seconds=settings.tuning.ledger_lock_wait_seconds,
        )

    def sync(self, plan: StreamPlan) -> dict[str, t.Any]:
        """Make the stream's list what the plan says; return its STATE entry."""
        session, logger = self.session, self.session.logger
        chunk = session.settings.records_per_request
        started, stats_before = time.monotonic(), session.client.stats.snapshot()
        strategy = self.strategy(plan)
        sent = Sent()
        audience_id: str | None = None
        with ExitStack() as stack:
            stack.enter_context(strategy.locked(plan))
            resolved = self.lists.find(plan)
            if resolved is not None:
                stack.enter_context(strategy.locked_list(resolved.id))
            changes = stack.enter_context(strategy.changes(plan, resolved, check=True))
            adds = changes.adds(chunk)
            if resolved is None:
                first = next(adds, None)
                if first is None:
                    logger.warning(
                        "Stream '%s': no list named %r exists and the stream adds nobody; "
                        "nothing to do.",
                        plan.stream,
                        plan.segment_name,
                    )
                    return state_entry(session.account, plan, None, None, sent)
                resolved = self.lists.create(plan, first)
                stack.enter_context(strategy.locked_list(resolved.id))
                changes.accepted(resolved.id, "ADD", first)
                sent.count("ADD", len(first) // DIGEST_SIZE)
                logger.info(
                    "Stream '%s': created customer list %s (%s).",
                    plan.stream,
                    resolved.id,
                    resolved.list_type,
                )
            else:
                logger.info(
                    "Stream '%s': reusing customer list %s (%r).",
                    plan.stream,
                    resolved.id,
                    resolved.name,
                )
            accepted = self.sender.send(
                resolved.id,
                _calls(adds, changes.removes(chunk)),
                on_accepted=partial(changes.accepted, resolved.id),
                stream=plan.stream,
                total=changes.add_count + changes.remove_count,
            )
            sent.added += accepted.added
            sent.removed += accepted.removed
            audience_id = self.audiences.attach(plan, resolved)
            mirror = changes.mirror
        entry = state_entry(session.account, plan, resolved, audience_id, sent)
        log_summary(
            logger,
            plan,
            entry,
            mirror=mirror,
            started=started,
            stats_before=stats_before,
            stats_after=session.client.stats.snapshot(),
        )
        return entry

    def dry_run(self, plan: StreamPlan) -> None:
        """Print what a real run would do for this stream; make no write call."""
        strategy = self.strategy(plan)
        resolved: ResolvedList | None = None
        try:
            resolved = self.lists.find(plan)
            if resolved is None:
                list_line = f"would create customer list {plan.segment_name!r} ({plan.list_type})"
            else:
                list_line = f"would reuse customer list {resolved.id} ({resolved.name!r})"
        except PinterestError as error:
            target = plan.segment_id or repr(plan.segment_name)
            list_line = f"would create or reuse customer list {target} (lookup failed: {error})"
        with strategy.changes(plan, resolved, check=False) as changes:
            adds, removes, mirror = changes.add_count, changes.remove_count, changes.mirror
        print_dry_run(
            plan,
            list_line,
            adds=adds,
            removes=removes,
            chunk=self.session.settings.records_per_request,
            mirror=mirror,
        )


def _calls(adds: Iterator[bytes], removes: Iterator[bytes]) -> Iterator[tuple[Operation, bytes]]:
    return itertools.chain(
        (("ADD", blob) for blob in adds),
        (("REMOVE", blob) for blob in removes),
    )
