"""The sync layer: streams' plans in, Pinterest calls out, STATE entries back. No Singer here.

`run_streams` syncs (or dry-runs) every checked plan of a run with one `Session`; each stream
succeeds or fails on its own, and the caller decides what to write.
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass, field

from target_pinterest_audiences.errors import StreamFailed, StreamRefused, TargetError
from target_pinterest_audiences.ledger import LedgerError
from target_pinterest_audiences.loading.report import log_read
from target_pinterest_audiences.loading.session import Session
from target_pinterest_audiences.loading.stream import StreamSync
from target_pinterest_audiences.pinterest import (
    PinterestError,
    PinterestScopeError,
    QuotaExhausted,
    api_url_problem,
)

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.settings import Settings

__all__ = ["RunOutcome", "Session", "run_streams", "start_session"]


@dataclass
class RunOutcome:
    """The STATE entries of the streams that synced, and a message per stream that did not."""

    entries: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def start_session(settings: Settings, logger: logging.Logger) -> Session:
    """The run's session, checked before any input is read: one cheap read call proves the
    token, the ad account and api_url (a dry run checks too), and the ledger opens."""
    problem = api_url_problem(settings.api_url)
    if problem is not None:
        logger.warning("%s. Check the api_url setting.", problem)
    try:
        session = Session(settings, logger)
    except LedgerError as error:  # the shared refresh token lives in the ledger database
        raise TargetError(str(error)) from None
    try:
        session.client.check_access()
        if settings.may_mirror:
            session.ledger().open()
    except LedgerError as error:
        session.close()
        raise TargetError(str(error)) from None
    except BaseException:
        session.close()
        raise
    return session


def run_streams(
    session: Session,
    plans: t.Sequence[StreamPlan],
    previous: t.Mapping[str, t.Any] | None = None,
) -> RunOutcome:
    """Sync every plan (dry-run them with `dry_run`); one stream's failure spares the others,
    but not an exhausted quota or a token without the scopes: those stop the whole run.

    `previous`: the STATE entries of the last run by stream, when the tap handed them back.
    """
    outcome = RunOutcome()
    settings, logger = session.settings, session.logger
    syncer = StreamSync(session)
    stopped: PinterestError | None = None
    for plan in plans:
        if stopped is not None:
            why = stopped.headline if isinstance(stopped, QuotaExhausted) else str(stopped)
            outcome.failures.append(f"Stream '{plan.stream}' was not synced: {why.rstrip('.')}.")
            continue
        log_read(logger, plan)
        try:
            if settings.dry_run:
                syncer.dry_run(plan)
            else:
                before = (previous or {}).get(plan.stream)
                outcome.entries[plan.stream] = syncer.sync(
                    plan, before if isinstance(before, dict) else None
                )
        except (StreamRefused, StreamFailed) as refused:
            outcome.failures.append(str(refused))
        except (QuotaExhausted, PinterestScopeError) as wall:
            # Every later call would hit the same wall: stop here, say why once per stream.
            outcome.failures.append(f"Stream '{plan.stream}' failed: {wall}")
            stopped = wall
        except (PinterestError, LedgerError) as error:
            # Another run holds the list, Pinterest refused or stayed down: this stream fails
            # with the message; the others still sync.
            outcome.failures.append(f"Stream '{plan.stream}' failed: {error}")
    return outcome
