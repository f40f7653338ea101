"""Sync one stream's plan: resolve the list, send its changes, attach the audience.

Order of effects, chosen so that a crash at any point is repaired by running again:
1. find the list (by id, else by exact name, in the run's index of the account) or create it
   with the first blob of members; a create whose answer was lost is followed by a lookup in a
   fresh read of the account, never a blind second create;
2. send ADD and REMOVE calls, several in flight within the run's quota; membership is a
   set, so a call retried after a lost answer does no harm (mirror mode records each call
   in its ledger only once Pinterest accepted it);
3. find or create the CUSTOMER_LIST audience (same lookup-before-create rule).
What Pinterest made of it is read back once for the whole run (`figures.py`), and the caller
writes STATE only after all of it was accepted. Explicit and mirror mode differ only in their
`Strategy` (locks, and what the changes are); a dry run computes the changes the same way,
prints them and stops.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
import typing as t
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial

from target_pinterest_audiences.loading.account import Noted
from target_pinterest_audiences.loading.changes import Explicit, Mirror, Strategy
from target_pinterest_audiences.loading.lookalikes import Lookalikes, Settled
from target_pinterest_audiences.loading.report import (
    MirrorFigures,
    print_dry_run,
    warn_if_the_list_changed,
)
from target_pinterest_audiences.loading.resolve import Audiences, Lists, ResolvedList
from target_pinterest_audiences.loading.sender import DIGEST_SIZE, CallSize, Operation, Sender, Sent
from target_pinterest_audiences.pinterest import ClientStats, PinterestError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.loading.session import Session


@dataclass
class Synced:
    """What one stream's sync did, before Pinterest's figures are read back for the run."""

    plan: StreamPlan
    account: str
    resolved: ResolvedList | None  # None: no list, and nothing to add
    audience: dict[str, t.Any] | None  # None: none yet (the list is too small)
    sent: Sent
    mirror: MirrorFigures | None
    seconds: float
    stats: ClientStats
    lookalikes: list[Settled] | None = None  # None: the stream sets no lookalikes
    started_at: dt.datetime | None = None  # when its sync began (UTC), for the run history

    @property
    def audience_id(self) -> str | None:
        return None if self.audience is None else str(self.audience["id"])


@dataclass
class Reached:
    """How far a stream's sync got: the ids it knows so far, for the run history of a stream
    that fails half-way."""

    customer_list_id: str | None = None
    audience_id: str | None = None


class StreamSync:
    """The primitives one stream's sync is made of, built once per run and shared by the
    streams that sync side by side."""

    def __init__(self, session: Session) -> None:
        self.session = session
        settings = session.settings
        tuning = settings.tuning
        logger = session.logger
        settle = tuning.lost_create_settle_seconds
        # One size for the whole run: a 413 lowers it for every later call and stream.
        self.size = CallSize(settings.records_per_request, logger)
        self.lists = Lists(logger, settle_seconds=settle)
        self.audiences = Audiences(logger, settle_seconds=settle)
        self.lookalikes = Lookalikes(logger, settle_seconds=settle)
        self.sender = Sender(
            session.calls,
            logger,
            self.size,
            calls_in_flight=tuning.calls_in_flight,
            progress_interval=tuning.progress_interval_seconds,
        )

    def strategy(self, plan: StreamPlan, account: str) -> Strategy:
        settings = self.session.settings
        stream_settings = settings.for_stream(plan.stream)
        wait = settings.tuning.ledger_lock_wait_seconds
        # Both modes record in the ledger (opened at first use: a dry run never opens it).
        if not stream_settings.mirror:
            return Explicit(
                self.session.ledger, account, self.session.logger, lock_wait_seconds=wait
            )
        return Mirror(
            self.session.ledger,
            account,
            self.session.logger,
            max_removal_fraction=stream_settings.max_removal_fraction,
            lock_wait_seconds=wait,
        )

    def sync(
        self,
        plan: StreamPlan,
        previous: t.Mapping[str, t.Any] | None = None,
        stats: ClientStats | None = None,
        started_at: dt.datetime | None = None,
        reached: Reached | None = None,
    ) -> Synced:
        """Make the stream's list what the plan says.

        `previous`: the list the stream loaded last, as the run history has it. `stats`: the
        stream's own counters (its calls count there too). `reached`: filled in with the ids as
        they become known, so that a failure half-way still names them.
        """
        session, logger = self.session, self.session.logger
        chunk = session.settings.records_per_request
        started, stats = time.monotonic(), stats if stats is not None else ClientStats()
        started_at = started_at or dt.datetime.now(dt.UTC)
        where = session.where(plan.stream, stats)
        strategy = self.strategy(plan, where.account)
        sent, reached = Sent(), reached if reached is not None else Reached()
        with ExitStack() as stack:
            stack.enter_context(strategy.locked(plan))
            # Holding the lock: what another run created since the index was read is noted in
            # the ledger (both modes record there).
            where = dataclasses.replace(where, noted=Noted(session.ledger(), where.account))
            stack.enter_context(where.index.claim(plan.segment_id or str(plan.segment_name)))
            resolved = self.lists.find(plan, where)
            if resolved is not None:
                reached.customer_list_id = resolved.id
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
                    return Synced(
                        plan, where.account, None, None, sent, None, _since(started), stats,
                        started_at=started_at,
                    )  # fmt: skip
                resolved, leftover = self.lists.create(plan, where, first, self.size)
                reached.customer_list_id = resolved.id
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
            warn_if_the_list_changed(logger, plan, resolved, previous, where.account)
            sent.absorb(
                self.sender.send(
                    where.client,
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
            audience = self.audiences.attach(plan, resolved, stream_settings, where)
            reached.audience_id = None if audience is None else str(audience["id"])
            lookalikes = self.lookalikes.settle(plan, audience, stream_settings.lookalikes, where)
            mirror = changes.mirror
        return Synced(
            plan,
            where.account,
            resolved,
            audience,
            sent,
            mirror,
            _since(started),
            stats,
            lookalikes,
            started_at,
        )

    def dry_run(self, plan: StreamPlan) -> None:
        """Print what a real run would do for this stream; make no write call."""
        where = self.session.where(plan.stream)
        strategy = self.strategy(plan, where.account)
        resolved: ResolvedList | None = None
        try:
            resolved = self.lists.find(plan, where)
            if resolved is None:
                list_line = f"would create customer list {plan.segment_name!r} ({plan.list_type})"
            else:
                list_line = f"would reuse customer list {resolved.id} ({resolved.name!r})"
        except PinterestError as error:
            target = plan.segment_id or repr(plan.segment_name)
            list_line = f"would create or reuse customer list {target} (lookup failed: {error})"
        with strategy.changes(plan, resolved, check=False) as changes:
            adds, removes, mirror = changes.add_count, changes.remove_count, changes.mirror
        wanted = self.session.settings.for_stream(plan.stream).lookalikes
        seed = where.index.audience_of(resolved.id) if resolved is not None else None
        print_dry_run(
            plan,
            list_line,
            adds=adds,
            removes=removes,
            chunk=self.session.settings.records_per_request,
            mirror=mirror,
            lookalikes=self.lookalikes.plan(seed, wanted or (), where),
        )


def _since(started: float) -> float:
    return time.monotonic() - started


def _calls(adds: Iterator[bytes], removes: Iterator[bytes]) -> Iterator[tuple[Operation, bytes]]:
    both: Iterator[tuple[Operation, bytes]] = itertools.chain(
        (("ADD", blob) for blob in adds),
        (("REMOVE", blob) for blob in removes),
    )
    return both
