"""The sync layer: streams' plans in, Pinterest calls out, STATE entries back. No Singer here.

`run_streams` syncs (or dry-runs) every checked plan of a run with one `Session`; each stream
succeeds or fails on its own, and the caller decides what to write.
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass, field

from target_pinterest_audiences.errors import StreamFailed, StreamRefused, TargetError
from target_pinterest_audiences.history import call_counts, utc_now
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
        session.history.wait()  # opened while the credentials were checked; before any fork
    except LedgerError as error:
        session.close()
        raise TargetError(str(error)) from None
    except BaseException:
        session.close()
        raise
    return session


def run_streams(session: Session, plans: t.Sequence[StreamPlan]) -> RunOutcome:
    """Sync every plan (dry-run them with `dry_run`); one stream's failure spares the others,
    but not an exhausted quota or a token without the scopes: those stop the whole run.

    Each stream's outcome goes to the run history, which also says which list the stream
    loaded last (whatever STATE the tap handed back).
    """
    outcome = RunOutcome()
    settings, logger, history = session.settings, session.logger, session.history
    syncer = StreamSync(session)
    stopped: PinterestError | None = None
    for plan in plans:
        started, counted = utc_now(), session.client.stats.snapshot()
        entry: dict[str, t.Any] | None = None
        failure: str | None = None
        refused = False
        try:
            if stopped is not None:
                why = stopped.headline if isinstance(stopped, QuotaExhausted) else str(stopped)
                failure = f"Stream '{plan.stream}' was not synced: {why.rstrip('.')}."
            elif settings.dry_run:
                log_read(logger, plan)
                syncer.dry_run(plan)
            else:
                log_read(logger, plan)
                entry = syncer.sync(plan, history.previous(plan.stream))
                outcome.entries[plan.stream] = entry
        except (StreamRefused, StreamFailed) as error:
            failure, refused = str(error), isinstance(error, StreamRefused)
        except (QuotaExhausted, PinterestScopeError) as wall:
            # Every later call would hit the same wall: stop here, say why once per stream.
            failure = f"Stream '{plan.stream}' failed: {wall}"
            stopped = wall
        except (PinterestError, LedgerError) as error:
            # Another run holds the list, Pinterest refused or stayed down: this stream fails
            # with the message; the others still sync.
            failure = f"Stream '{plan.stream}' failed: {error}"
        except BaseException as error:  # the run stops (a signal, a bug): the history says so
            failure = f"Stream '{plan.stream}' failed: {_stopped(error)}"
            raise
        finally:
            history.add(
                plan,
                started_at=started,
                entry=entry,
                failure=failure,
                refused=refused,
                **call_counts(counted, session.client.stats.snapshot()),
            )
        if failure is not None:
            outcome.failures.append(failure)
    return outcome


def _stopped(error: BaseException) -> str:
    if isinstance(error, SystemExit | KeyboardInterrupt):
        return "the run was stopped before the stream finished."
    return str(error) if isinstance(error, TargetError) else f"{type(error).__name__}: {error}"
