"""The history grouped by stream, and the report's JSON (pure: runs in, plain values out)."""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field, replace

from target_pinterest_audiences.history.record import clean_message

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from target_pinterest_audiences.ledger import RunRecord


@dataclass
class StreamRuns:
    """One stream's runs, oldest first."""

    name: str
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def latest(self) -> RunRecord:
        return self.runs[-1]

    @property
    def last_synced(self) -> RunRecord | None:
        """The latest run that synced."""
        return next((run for run in reversed(self.runs) if run.outcome == "synced"), None)

    @property
    def failures(self) -> int:
        return sum(run.outcome != "synced" for run in self.runs)


def by_stream(runs: Iterable[RunRecord]) -> list[StreamRuns]:
    """The runs grouped by stream (streams by name), each stream's oldest first; messages
    cleaned again, whoever wrote them."""
    streams: dict[str, StreamRuns] = {}
    for run in runs:
        if run.message is not None:
            run = _with_message(run, clean_message(run.message))
        streams.setdefault(run.stream, StreamRuns(run.stream)).runs.append(run)
    return [streams[name] for name in sorted(streams)]


def _with_message(run: RunRecord, message: str) -> RunRecord:
    return run if run.message == message else replace(run, message=message)


def as_json(streams: Iterable[StreamRuns]) -> dict[str, t.Any]:
    """`{"streams": {"<stream>": {"runs": [...]}}}`, each run oldest first (the contract)."""
    return {"streams": {s.name: {"runs": [run.as_json() for run in s.runs]} for s in streams}}


def moment(iso: str) -> dt.datetime:
    """A history time (`2026-11-23T23:59:59.123Z`) as an aware datetime."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def shown_time(iso: str) -> str:
    """`2026-11-23 23:59` (UTC): what a person reads."""
    return moment(iso).strftime("%Y-%m-%d %H:%M")


def shown(value: object, *, percent: bool = False) -> str:
    """A figure as a table shows it: `-` when unknown."""
    if value is None:
        return "-"
    if percent and isinstance(value, int | float):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
