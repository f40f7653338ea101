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
from target_pinterest_audiences.pinterest import PinterestError

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.settings import Settings

__all__ = ["RunOutcome", "run_streams"]


@dataclass
class RunOutcome:
    """The STATE entries of the streams that synced, and a message per stream that did not."""

    entries: dict[str, dict[str, t.Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run_streams(
    settings: Settings, plans: t.Sequence[StreamPlan], logger: logging.Logger
) -> RunOutcome:
    """Sync every plan (dry-run them with `dry_run`); one stream's failure spares the others."""
    outcome = RunOutcome()
    if not plans:
        return outcome
    with Session(settings, logger) as session:
        if any(settings.for_stream(plan.stream).mirror for plan in plans):
            try:
                session.ledger()
            except LedgerError as error:
                raise TargetError(str(error)) from None
        syncer = StreamSync(session)
        for plan in plans:
            log_read(logger, plan)
            try:
                if settings.dry_run:
                    syncer.dry_run(plan)
                else:
                    outcome.entries[plan.stream] = syncer.sync(plan)
            except (StreamRefused, StreamFailed) as refused:
                outcome.failures.append(str(refused))
            except (PinterestError, LedgerError) as error:
                # Another run holds the list, Pinterest refused or stayed down: this stream fails
                # with the message; the others still sync.
                outcome.failures.append(f"Stream '{plan.stream}' failed: {error}")
    return outcome
