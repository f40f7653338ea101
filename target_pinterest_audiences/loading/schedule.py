"""Streams side by side: which stream syncs when, on how many threads, and when the run stops.

The run's streams sync on a bounded pool (`streams_in_parallel`), their calls on the session's
call pool under its one pacer, so neither threads nor connections grow with the number of
streams. Streams that name one list sync one after another, in input order (a later stream's
rows win, as if the run were sequential); otherwise the largest start first, so that a stream
of ten million members is not left to the end, while the pacer serves every stream's calls in
the order they asked, so that it does not hold the small ones behind it either.

One stream's refusal or failure spares the others. A wall every call would hit (Pinterest's
quota used up, a token without the scopes) stops the whole run at once: the pacer is stopped,
every waiting call and every stream not yet started ends with the reason.
"""

from __future__ import annotations

import threading
import typing as t
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from target_pinterest_audiences.errors import StreamFailed, StreamRefused
from target_pinterest_audiences.history import utc_now
from target_pinterest_audiences.ledger import LedgerError
from target_pinterest_audiences.loading.report import log_read
from target_pinterest_audiences.loading.stream import Reached
from target_pinterest_audiences.pinterest import (
    ClientStats,
    PinterestError,
    PinterestScopeError,
    QuotaExhausted,
    RunStopped,
)

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.loading.session import Session
    from target_pinterest_audiences.loading.stream import StreamSync, Synced
    from target_pinterest_audiences.progress import RunProgress

_P = t.TypeVar("_P")


def in_groups(
    plans: Sequence[_P], key: Callable[[_P], Hashable], size: Callable[[_P], int]
) -> list[list[_P]]:
    """The plans in groups of one ``key`` each (input order inside a group), the group with the
    most work (``size``, summed) first; ties keep the input order. Pure."""
    groups: dict[Hashable, list[_P]] = {}
    for plan in plans:
        groups.setdefault(key(plan), []).append(plan)
    ordered = list(groups.values())
    ordered.sort(key=lambda group: -sum(size(plan) for plan in group))
    return ordered


@dataclass
class RunOutcome:
    """What the streams did: what each synced stream did (for its STATE entry), a message per
    stream that did not sync, in input order."""

    synced: list[Synced] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    entries: dict[str, dict[str, t.Any]] = field(default_factory=dict)  # filled after read-back


class _Stop:
    """The first wall of the run: why every stream it stopped was not synced."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: PinterestError | None = None

    def hit(self, error: PinterestError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error

    @property
    def why(self) -> str:
        error = self.error
        text = error.headline if isinstance(error, QuotaExhausted) else str(error)
        return text.rstrip(".")


def sync_all(
    session: Session,
    syncer: StreamSync,
    plans: Sequence[StreamPlan],
    progress: RunProgress,
) -> RunOutcome:
    """Sync (or dry-run) every plan, several side by side. A stream that does not sync goes to
    the run history here (one that does, once Pinterest's figures are read back)."""
    settings, logger, history = session.settings, session.logger, session.history
    stop = _Stop()
    results: dict[str, Synced] = {}
    failures: dict[str, str] = {}

    def stopped(plan: StreamPlan) -> str:
        return f"Stream '{plan.stream}' was not synced: {stop.why}."

    def one(plan: StreamPlan) -> None:
        stats, started, reached = ClientStats(), utc_now(), Reached()

        def failed(message: str, *, refused: bool = False) -> None:
            failures[plan.stream] = message
            history.add(
                plan,
                started_at=started,
                failure=message,
                refused=refused,
                customer_list_id=reached.customer_list_id,
                audience_id=reached.audience_id,
                counters=stats.snapshot(),
            )

        if stop.error is not None:
            failed(stopped(plan))
            progress.skipped()
            return
        with progress.syncing() as synced:
            log_read(logger, plan)
            try:
                if settings.dry_run:
                    syncer.dry_run(plan)
                else:
                    previous = history.previous(plan.stream)
                    results[plan.stream] = syncer.sync(plan, previous, stats, started, reached)
                synced()
            except (StreamRefused, StreamFailed) as error:
                failed(str(error), refused=isinstance(error, StreamRefused))
            except (QuotaExhausted, PinterestScopeError) as wall:
                # Every later call would hit the same wall: stop the run. A stream whose own
                # call met it says how; the others, that the run stopped.
                stop.hit(wall)
                session.pacer.stop(stop.why)
                said = f"Stream '{plan.stream}' failed: {wall}"
                failed(said if wall.status is not None else stopped(plan))
            except RunStopped:
                failed(stopped(plan))
            except (PinterestError, LedgerError) as error:
                # Another run holds the list, Pinterest refused or stayed down: this stream
                # fails with the message; the others still sync.
                failed(f"Stream '{plan.stream}' failed: {error}")
            except BaseException:  # the run stops (a signal, a bug): the history says so
                failed(
                    f"Stream '{plan.stream}' failed: the run was stopped before the stream "
                    "finished."
                )
                raise

    def group_of(group: list[StreamPlan]) -> None:
        for plan in group:
            one(plan)

    groups = in_groups(
        plans,
        key=lambda plan: (session.account_of(plan.stream)[0], plan.segment_id, plan.segment_name),
        size=lambda plan: plan.adds.count + plan.removes.count,
    )
    workers = max(1, min(settings.tuning.streams_in_parallel, len(groups)))
    with ThreadPoolExecutor(workers, thread_name_prefix="tpa-stream") as pool:
        futures = [pool.submit(group_of, group) for group in groups]
        try:
            for future in futures:
                future.result()  # only what no stream handles (a bug, a signal) comes here
        except BaseException:
            # Stop everything at once: the calls waiting for the quota end, the rest stop.
            session.pacer.stop("the run was stopped")
            for future in futures:
                future.cancel()
            raise
    outcome = RunOutcome()
    for plan in plans:
        if plan.stream in results:
            outcome.synced.append(results[plan.stream])
        elif plan.stream in failures:
            outcome.failures.append(failures[plan.stream])
    return outcome
