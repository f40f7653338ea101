"""Sync one stream's plan: resolve the list, send its changes, attach the audience, read back.

Order of effects, chosen so that a crash at any point is repaired by running again:
1. find the list (by id, else by exact name) or create it with the first blob of members;
   a create whose answer was lost is followed by a lookup by name, never a blind second create;
2. send ADD and REMOVE calls, several in flight within the write quota; membership is a
   set, so a call retried after a lost answer does no harm (mirror mode records each call
   in its ledger only once Pinterest accepted it);
3. find or create the CUSTOMER_LIST audience (same lookup-before-create rule);
4. read the list and the audience back: what Pinterest made of the upload so far.
The caller writes STATE only after all of it was accepted. Explicit and mirror mode differ
only in their `Strategy` (locks, and what the changes are); a dry run computes the changes
the same way, prints them and stops.
"""

from __future__ import annotations

import itertools
import time
import typing as t
from contextlib import ExitStack
from functools import partial

from target_pinterest_audiences.loading.changes import Explicit, Mirror, Strategy
from target_pinterest_audiences.loading.report import (
    PinterestFigures,
    log_summary,
    print_dry_run,
    state_entry,
)
from target_pinterest_audiences.loading.resolve import Audiences, Lists, ResolvedList
from target_pinterest_audiences.loading.sender import DIGEST_SIZE, CallSize, Operation, Sender, Sent
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
        # One size for the whole run: a 413 lowers it for every later call and stream.
        self.size = CallSize(settings.records_per_request, logger)
        self.lists = Lists(client, logger, settle_seconds=settle)
        self.audiences = Audiences(client, logger, settle_seconds=settle)
        self.sender = Sender(
            client,
            logger,
            self.size,
            calls_in_flight=tuning.calls_in_flight,
            progress_interval=tuning.progress_interval_seconds,
        )

    def strategy(self, plan: StreamPlan) -> Strategy:
        settings = self.session.settings
        stream_settings = settings.for_stream(plan.stream)
        wait = settings.tuning.ledger_lock_wait_seconds
        # Both modes record in the ledger (opened at first use: a dry run never opens it).
        if not stream_settings.mirror:
            return Explicit(
                self.session.ledger, settings.ad_account_id, self.session.logger,
                lock_wait_seconds=wait,
            )  # fmt: skip
        return Mirror(
            self.session.ledger,
            settings.ad_account_id,
            self.session.logger,
            max_removal_fraction=stream_settings.max_removal_fraction,
            lock_wait_seconds=wait,
        )

    def sync(
        self, plan: StreamPlan, previous: t.Mapping[str, t.Any] | None = None
    ) -> dict[str, t.Any]:
        """Make the stream's list what the plan says; return its STATE entry.

        `previous` is the stream's entry in the STATE of the last run, if the tap handed it back.
        """
        session, logger = self.session, self.session.logger
        chunk = session.settings.records_per_request
        started, stats_before = time.monotonic(), session.client.stats.snapshot()
        strategy = self.strategy(plan)
        sent = Sent()
        with ExitStack() as stack:
            stack.enter_context(strategy.locked(plan))
            resolved = self.lists.find(plan)
            if resolved is not None:
                stack.enter_context(strategy.locked_list(resolved.id))
            changes = stack.enter_context(strategy.changes(plan, resolved, check=True))
            adds: Iterator[bytes] = changes.adds(chunk)
            if resolved is None:
                first = next(adds, None)
                if first is None:
                    logger.warning(
                        "Stream '%s': no list named %r exists and the stream adds nobody; "
                        "nothing to do.",
                        plan.stream,
                        plan.segment_name,
                    )
                    return state_entry(session.account, plan, None, None, sent, None, None)
                resolved, leftover = self.lists.create(plan, first, self.size)
                stack.enter_context(strategy.locked_list(resolved.id))
                created = first[: len(first) - len(leftover)]
                changes.created(resolved.id, created)
                sent.count("ADD", len(created) // DIGEST_SIZE)
                sent.exceptions.update(resolved.exceptions)
                if leftover:
                    adds = itertools.chain([leftover], adds)
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
            _warn_if_the_list_changed(logger, plan, resolved, previous, session.account)
            sent.absorb(
                self.sender.send(
                    resolved.id,
                    _calls(adds, changes.removes(chunk)),
                    before_send=partial(changes.before_send, resolved.id),
                    on_resend=partial(changes.resent, resolved.id),
                    on_too_large=partial(changes.too_large, resolved.id),
                    on_accepted=partial(changes.accepted, resolved.id),
                    stream=plan.stream,
                    total=changes.add_count + changes.remove_count,
                )
            )
            stream_settings = session.settings.for_stream(plan.stream)
            audience_id = self.audiences.attach(plan, resolved, stream_settings)
            mirror = changes.mirror
        figures = self.read_back(plan, resolved.id, audience_id)
        entry = state_entry(session.account, plan, resolved, audience_id, sent, figures, mirror)
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

    def read_back(
        self, plan: StreamPlan, list_id: str, audience_id: str | None
    ) -> PinterestFigures:
        """Pinterest's latest figures for the list and its audience (None where it gave none)."""
        client = self.session.client
        try:
            listed = client.get_customer_list(list_id)
            audience = client.get_audience(audience_id) if audience_id is not None else {}
        except PinterestError as error:
            # Everything was accepted already: the figures are a report, not part of the sync.
            self.session.logger.warning(
                "Stream '%s': could not read back what Pinterest made of the upload (%s).",
                plan.stream,
                error,
            )
            return PinterestFigures(None, None, None)
        size = audience.get("size")
        return PinterestFigures(
            list_status=listed.get("status"),
            audience_status=audience.get("status"),
            audience_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        )

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


def _warn_if_the_list_changed(
    logger: t.Any,
    plan: StreamPlan,
    resolved: ResolvedList,
    previous: t.Mapping[str, t.Any] | None,
    account: str,
) -> None:
    """The last run's STATE names another list for this stream: say so, naming both."""
    if not previous or previous.get("ad_account_id") not in (None, account):
        return
    old_id = previous.get("customer_list_id")
    if old_id is None or str(old_id) == resolved.id:
        return
    logger.warning(
        "Stream '%s' now loads customer list %s (%r); the previous run loaded customer list %s "
        "(%r) for this stream. Its segment_name or segment_id changed, and the old list keeps "
        "its members and its audience. If that was not meant, set it back; to retire the old "
        "list, remove its members with explicit remove rows, or delete it in Ads Manager.",
        plan.stream,
        resolved.id,
        resolved.name,
        old_id,
        previous.get("segment_name"),
    )


def _calls(adds: Iterator[bytes], removes: Iterator[bytes]) -> Iterator[tuple[Operation, bytes]]:
    both: Iterator[tuple[Operation, bytes]] = itertools.chain(
        (("ADD", blob) for blob in adds),
        (("REMOVE", blob) for blob in removes),
    )
    return both
