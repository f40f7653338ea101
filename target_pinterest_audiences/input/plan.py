"""What one stream asks of Pinterest, and the rules that refuse a stream before anything is sent.

Pure: no Singer, no I/O. A stream's plan exists only once the whole stream was read and checked,
so a stream that names a second list after thousands of rows, or holds an invalid row under
``on_invalid_record=fail``, sends nothing at all.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from target_pinterest_audiences.input.members import MemberSet
from target_pinterest_audiences.input.rows import ListNamed, RowCollector

_MISSING = "<missing>"


@dataclass(frozen=True)
class StreamPlan:
    """One stream, read whole and checked: the list it names and its deduplicated members."""

    stream: str
    segment_name: str | None
    segment_id: str | None
    list_type: str
    adds: MemberSet
    removes: MemberSet
    rows: int
    invalid_by_reason: t.Mapping[str, int]
    rejected_identifiers: t.Mapping[str, int]

    @property
    def records_invalid(self) -> int:
        return sum(self.invalid_by_reason.values())


@dataclass(frozen=True)
class Refusal:
    """A stream refused before anything was sent for it: why, and what was read of it."""

    stream: str
    message: str
    segment_name: str | None
    rows: int
    invalid_by_reason: t.Mapping[str, int]
    list_type: str | None = None


def refusal(stream: str, collector: RowCollector, *, fail_on_invalid: bool) -> str | None:
    """Why the stream must send nothing, or None when it may be synced."""
    named = collector.lists_named
    if collector.refused or not named:
        return (
            f"Stream '{stream}' was refused and nothing was sent for it: {_why_refused(named)}. "
            "One stream loads one customer list: each row names it with the same segment_name "
            "(and segment_id, if any); split the input into one stream per list."
        )
    if fail_on_invalid and collector.first_invalid is not None:
        row, line, reason = collector.first_invalid
        total = sum(collector.invalid.values())
        return (
            f"Stream '{stream}' was refused and nothing was sent for it (on_invalid_record=fail): "
            f"row {row} of stream '{stream}' (input line {line}) is invalid: {reason}; {total} "
            f"invalid row(s) in all ({format_reasons(collector.invalid)}). Fix the rows, or set "
            "on_invalid_record=skip to drop invalid rows and load the rest."
        )
    return None


def _why_refused(named: list[ListNamed]) -> str:
    if not named:
        return "it has no rows naming a customer list"
    first = named[0]
    if first.problem is not None:
        return f"{first.problem} (row {first.row}, input line {first.line})"
    second = named[1]
    if second.problem is not None:
        return f"{second.problem} (row {second.row}, input line {second.line})"
    if second.name != first.name:
        what, a, b = "segment_name", first.name, second.name
    else:
        what, a, b = "segment_id", first.segment_id, second.segment_id
    return (
        f"it names two customer lists: {what} {_show(a)} and {_show(b)} "
        f"(first at row {second.row}, input line {second.line})"
    )


def _show(value: str | None) -> str:
    return _MISSING if value is None else repr(value)


def format_reasons(counts: t.Mapping[str, int]) -> str:
    """`invalid_email: 3, missing_identifier: 1`, or `none`: counts by reason for messages."""
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items())) or "none"
