"""The sync layer: streams' plans in, Pinterest calls out, STATE entries back. No Singer here.

`start_session` checks the credentials against every ad account of the run before any input is
read, and starts reading each account into its index; `run_streams` syncs (or dry-runs) every
checked plan of the run, several side by side under one pacer (`schedule.py`), reads back once
what Pinterest made of them (`figures.py`), and returns each stream's STATE entry or failure.

Modules: `session` (what a run talks to), `account` (an ad account read once), `schedule`
(streams side by side), `stream` (one stream's sync), `resolve` (find or create, never twice),
`sender` (the calls of one list), `changes` (explicit and mirror mode), `figures` (the read-back),
`report` (STATE entries and log lines).
"""

from __future__ import annotations

import logging
import typing as t

from target_pinterest_audiences.errors import TargetError
from target_pinterest_audiences.ledger import LedgerError
from target_pinterest_audiences.loading.figures import read_back
from target_pinterest_audiences.loading.report import log_summary, state_entry
from target_pinterest_audiences.loading.schedule import RunOutcome, sync_all
from target_pinterest_audiences.loading.session import Session
from target_pinterest_audiences.loading.stream import StreamSync
from target_pinterest_audiences.pinterest import api_url_problem
from target_pinterest_audiences.progress import RunProgress

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.settings import Settings

__all__ = ["RunOutcome", "Session", "run_streams", "start_session"]


def start_session(settings: Settings, logger: logging.Logger) -> Session:
    """The run's session, checked before any input is read: one cheap read call per ad account
    proves the token, the account and api_url (a dry run checks too), and the ledger opens.
    Then every account is read into its index in the background, while the input is read."""
    problem = api_url_problem(settings.api_url)
    if problem is not None:
        logger.warning("%s. Check the api_url setting.", problem)
    try:
        session = Session(settings, logger)
    except LedgerError as error:  # the shared refresh token lives in the ledger database
        raise TargetError(str(error)) from None
    try:
        session.check_access()
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
    logger = session.logger
    progress = RunProgress(
        logger,
        total=len(plans),
        stats=session.client.stats,
        interval=session.settings.tuning.progress_interval_seconds,
    )
    with progress:
        outcome = sync_all(session, StreamSync(session), plans, progress)
    figures, _ = read_back(
        outcome.synced,
        client_of=lambda account: session.client_for(account, "ad_account_id"),
        index_of=session.index,
        pool=session.calls,
        logger=logger,
    )
    for synced in outcome.synced:
        entry = state_entry(
            synced.account,
            synced.plan,
            synced.resolved,
            synced.audience_id,
            synced.sent,
            figures.get(synced.plan.stream),
            synced.mirror,
            synced.lookalikes,
        )
        outcome.entries[synced.plan.stream] = entry
        session.history.add(
            synced.plan,
            started_at=synced.started_at,
            entry=entry,
            counters=synced.stats.snapshot(),
        )
        log_summary(
            logger,
            synced.plan,
            entry,
            mirror=synced.mirror,
            seconds=synced.seconds,
            stats=synced.stats.snapshot(),
        )
    if len(plans) > 1 or outcome.failures:
        progress.log_total(
            added=sum(one.sent.added for one in outcome.synced),
            removed=sum(one.sent.removed for one in outcome.synced),
        )
    return outcome
