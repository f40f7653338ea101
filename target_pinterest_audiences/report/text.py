"""The text report: each stream's latest run in a table, for a terminal."""

from __future__ import annotations

import typing as t

from target_pinterest_audiences.report.data import StreamRuns, shown, shown_time

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger import RunRecord

COLUMNS = (
    "stream", "last run (UTC)", "mode", "outcome", "list", "added", "removed", "invalid",
    "audience", "members", "match", "runs", "last synced (UTC)",
)  # fmt: skip
NUMERIC = {"added", "removed", "invalid", "audience", "members", "match", "runs"}


def _cells(stream: StreamRuns) -> list[str]:
    run: RunRecord = stream.latest
    audience = shown(run.audience_size)
    if run.audience_status is not None:
        audience = (
            f"{audience} {run.audience_status}"
            if run.audience_size is not None
            else (run.audience_status)
        )
    runs = f"{len(stream.runs)}" + (f" ({stream.failures} not synced)" if stream.failures else "")
    synced = stream.last_synced
    return [
        stream.name,
        shown_time(run.finished_at),
        run.sync_mode,
        run.outcome,
        shown(run.customer_list_id),
        shown(run.records_added),
        shown(run.records_removed),
        shown(run.records_invalid),
        audience,
        shown(run.members),
        shown(run.match_rate, percent=True),
        runs,
        "-"
        if synced is None
        else ("this run" if synced is run else shown_time(synced.finished_at)),
    ]


def render_text(streams: list[StreamRuns], where: str) -> str:
    """A table of each stream's latest run, and the messages of those that did not sync."""
    if not streams:
        return (
            f"No runs recorded yet in {where}. Each run of target-pinterest-audiences (dry runs "
            "aside) adds one entry per stream; run the report where the loader runs (for "
            "Meltano: meltano invoke target-pinterest-audiences:report).\n"
        )
    rows = [list(COLUMNS), *(_cells(s) for s in streams)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(row: list[str]) -> str:
        cells = (
            cell.rjust(width) if name in NUMERIC else cell.ljust(width)
            for name, cell, width in zip(COLUMNS, row, widths, strict=True)
        )
        return "  ".join(cells).rstrip()

    total = sum(len(s.runs) for s in streams)
    out = [f"Run history: {len(streams)} stream(s), {total} run(s) in {where}", ""]
    out += [line(rows[0]), line(["-" * w for w in widths])]
    out += [line(row) for row in rows[1:]]
    failed = [s for s in streams if s.latest.outcome != "synced"]
    if failed:
        out += ["", "Latest runs that did not sync:"]
        out += [f"  {s.name} ({s.latest.outcome}): {s.latest.message}" for s in failed]
    out += [
        "",
        "Pinterest matches uploads asynchronously: audience sizes lag by up to 48 hours.",
    ]
    return "\n".join(out) + "\n"
