"""What a run tells: the stream's STATE entry, the log lines a user reads, the dry run's lines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sys
import typing as t
from dataclasses import dataclass

from target_pinterest_audiences.input.plan import format_reasons

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.plan import StreamPlan
    from target_pinterest_audiences.loading.lookalikes import Settled
    from target_pinterest_audiences.loading.resolve import ResolvedList
    from target_pinterest_audiences.loading.sender import Sent


@dataclass(frozen=True)
class PinterestFigures:
    """What Pinterest reports of the list and its audience when read back (None: not given)."""

    list_status: str | None
    audience_status: str | None
    audience_size: int | None
    # Each lookalike's (status, size), by its audience id.
    lookalikes: t.Mapping[str, tuple[str | None, int | None]] = dataclasses.field(
        default_factory=dict
    )


@dataclass(frozen=True)
class MirrorFigures:
    """What mirror mode knows of a list: members it should hold, members remove rows left out,
    and records uploaded to it from elsewhere (up to that many members it cannot remove)."""

    members: int
    left_out: int
    outside: int = 0


def state_entry(
    account: str,
    plan: StreamPlan,
    resolved: ResolvedList | None,
    audience_id: str | None,
    sent: Sent,
    figures: PinterestFigures | None,
    mirror: MirrorFigures | None,
    lookalikes: t.Sequence[Settled] | None = None,
) -> dict[str, t.Any]:
    """The stream's entry under `pinterest_audiences` in the STATE the target writes."""
    entry: dict[str, t.Any] = {
        "ad_account_id": account,
        "segment_name": (resolved.name if resolved else None) or plan.segment_name,
        "customer_list_id": resolved.id if resolved else None,
        "audience_id": audience_id,
        "list_type": resolved.list_type if resolved else plan.list_type,
        "records_added": sent.added,
        "records_removed": sent.removed,
        "records_invalid": plan.records_invalid,
        "invalid_by_reason": dict(sorted(plan.invalid_by_reason.items())),
        # Records Pinterest said it could not use, by its code (never a record).
        "pinterest_exceptions": dict(sorted(sent.exceptions.items())),
        # Pinterest's latest figures (it matches asynchronously: up to 48 hours behind).
        "list_status": figures.list_status if figures else None,
        "audience_status": figures.audience_status if figures else None,
        "audience_size": figures.audience_size if figures else None,
        "synced_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if mirror is not None:
        entry["members"] = mirror.members
        size = entry["audience_size"]
        # With members from elsewhere in the list, its size is unknown: so is the rate.
        known = mirror.members and not mirror.outside
        entry["match_rate"] = round(size / mirror.members, 4) if size and known else None
    if lookalikes is not None:
        entry["lookalikes"] = [
            lookalike_entry(one, figures.lookalikes if figures else {}) for one in lookalikes
        ]
    return entry


def lookalike_entry(
    one: Settled, figures: t.Mapping[str, tuple[str | None, int | None]]
) -> dict[str, t.Any]:
    """One configured lookalike in the STATE entry: its audience and Pinterest's figures, or
    (audience_id null) why it waits for a later run."""
    status, size = figures.get(one.audience_id or "", (None, None))
    entry: dict[str, t.Any] = {
        "country": one.wanted.country,
        "percentage": one.wanted.percentage,
        "name": one.name,
        "audience_id": one.audience_id,
        "status": status,
        "size": size,
    }
    if one.why is not None:
        entry["waiting"] = one.why
    return entry


def log_read(logger: logging.Logger, plan: StreamPlan) -> None:
    """What the input held, before anything is sent."""
    logger.info(
        "Stream '%s': read %d row(s): %d member(s) to add, %d to remove, "
        "%d invalid row(s) skipped (%s), %d invalid identifier(s) dropped from valid rows "
        "(%s).",
        plan.stream,
        plan.rows,
        plan.adds.count,
        plan.removes.count,
        plan.records_invalid,
        format_reasons(plan.invalid_by_reason),
        sum(plan.rejected_identifiers.values()),
        format_reasons(plan.rejected_identifiers),
    )


def log_summary(
    logger: logging.Logger,
    plan: StreamPlan,
    entry: dict[str, t.Any],
    *,
    mirror: MirrorFigures | None,
    seconds: float,
    stats: dict[str, t.Any],
) -> None:
    """The one line per stream a user reads after a run.

    "Sent" is what was sent: a rerun that changes nothing still sends explicit mode's rows.
    Mirror mode knows what changed (its ledger), so it says that too.
    """
    changed = ""
    if mirror is not None:
        moves = (
            f"({entry['records_added']} joined, {entry['records_removed']} left, "
            f"{mirror.left_out} left out by remove rows)"
        )
        if mirror.outside:
            changed = (
                f"; the list should now hold the stream's {mirror.members} members {moves} and "
                f"up to {mirror.outside} more uploaded from elsewhere, which mirror mode cannot "
                "remove (see the warning above)"
            )
        else:
            changed = f"; the list should now hold {mirror.members} members {moves}"
    unusable = entry["pinterest_exceptions"]
    if unusable:
        changed += (
            f"; Pinterest could not use {sum(unusable.values())} record(s) "
            f"({format_reasons({f'code {code}': n for code, n in unusable.items()})})"
        )
    logger.info(
        "Summary: stream '%s' synced in %.1fs: %d rows, %d invalid (%s), %d sent as ADD, "
        "%d sent as REMOVE%s; %d write calls (%.1fs waiting for the quota), %d retries; "
        "list %s, audience %s. %s",
        plan.stream,
        seconds,
        plan.rows,
        plan.records_invalid,
        format_reasons(plan.invalid_by_reason),
        entry["records_added"],
        entry["records_removed"],
        changed,
        stats["writes"],
        stats["pacer_wait_seconds"],
        stats["retries"],
        entry["customer_list_id"],
        entry["audience_id"],
        pinterest_says(entry),
    )


def pinterest_says(entry: t.Mapping[str, t.Any]) -> str:
    """Pinterest's latest figures in plain words, with how far behind they may be."""

    def shown(value: object) -> str:
        return "not reported" if value is None else str(value)

    words = f"Pinterest reports: list {shown(entry['list_status'])}"
    if entry["audience_id"] is None:
        words += ", no audience yet"
    else:
        words += f", audience {shown(entry['audience_status'])}"
        if entry["audience_size"] is not None:
            words += f" with {entry['audience_size']} matched users"
            if entry.get("match_rate") is not None:
                words += f" ({entry['match_rate']:.0%} of the {entry['members']} members)"
    looks = entry.get("lookalikes")
    if looks:
        words += "; lookalikes: " + ", ".join(_lookalike_words(one) for one in looks)
    return f"{words}. Pinterest matches uploads asynchronously: its figures lag by up to 48 hours."


def _lookalike_words(one: t.Mapping[str, t.Any]) -> str:
    label = f"{one['country']} {one['percentage']}%"
    if one["audience_id"] is None:
        return f"{label} waiting ({one.get('waiting') or 'not created'})"
    size = f" with {one['size']} users" if one["size"] is not None else ""
    status = one["status"] or "status not reported"
    return f"{label} audience {one['audience_id']} {status}{size}"


def print_dry_run(
    plan: StreamPlan,
    list_line: str,
    *,
    adds: int,
    removes: int,
    chunk: int,
    mirror: MirrorFigures | None,
    lookalikes: t.Sequence[str] = (),
) -> None:
    """What a real run would do for this stream (on stderr: stdout carries only STATE)."""
    left_out = f"; {mirror.left_out} left out by remove rows" if mirror is not None else ""
    also = "".join(f"; {line}" for line in lookalikes)
    print(
        f"[dry run] stream '{plan.stream}': {list_line}; would add {adds} and remove "
        f"{removes} member(s) in calls of at most {chunk}{left_out}{also}; {plan.rows} row(s) "
        f"read, invalid rows: {format_reasons(plan.invalid_by_reason)}. Nothing was sent.",
        file=sys.stderr,
        flush=True,
    )


def warn_if_the_list_changed(
    logger: logging.Logger,
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
