"""One stream's outcome as a row of the run history. Pure: no I/O, no SDK, no clock.

The sync layer hands over plain values (what was read, the STATE entry or the failure, the
counters of the stream's calls) and gets a `RunRecord` back; where the counters come from is
the caller's business, so that streams synced at the same time can feed their own.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

from target_pinterest_audiences.input.identifiers import EMAIL_RE
from target_pinterest_audiences.ledger.history import MIRROR_KEYS, STATE_KEYS, RunRecord

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# What a raw identifier looks like, should one ever reach a message (the target's own never
# quote one): whatever the target takes for an email address, and a device id (a UUID).
_EMAIL = re.compile(EMAIL_RE.pattern, re.IGNORECASE)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
MESSAGE_LIMIT = 4000  # characters of a message kept in the history


class StreamRead(t.Protocol):
    """What was read of a stream (a `StreamPlan`, or a stream refused before it had one)."""

    @property
    def stream(self) -> str: ...
    @property
    def segment_name(self) -> str | None: ...
    @property
    def list_type(self) -> str | None: ...
    @property
    def rows(self) -> int: ...
    @property
    def invalid_by_reason(self) -> Mapping[str, int]: ...


def iso(moment: dt.datetime) -> str:
    """ISO-8601 in UTC, to the millisecond: `2026-11-23T23:59:59.123Z`."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def clean_message(message: str, secrets: Iterable[str | None] = ()) -> str:
    """The message as the history keeps it: secrets, email addresses and device ids replaced
    (a second line of defence: the target's messages never quote them), and at most
    `MESSAGE_LIMIT` characters."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(secret, "***")
    message = _EMAIL.sub("<email>", message)
    message = _UUID.sub("<device id>", message)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return message


def call_counts(counters: Mapping[str, t.Any] | None) -> dict[str, t.Any]:
    """`calls`, `retries` and `quota_wait_seconds` of a stream's own counters (a snapshot of
    its `ClientStats`: every stream counts its calls apart), or all None without them."""
    if counters is None:
        return {"calls": None, "retries": None, "quota_wait_seconds": None}
    return {
        "calls": counters["reads"] + counters["writes"],
        "retries": counters["retries"],
        "quota_wait_seconds": round(counters["pacer_wait_seconds"], 3),
    }


def run_record(
    read: StreamRead,
    *,
    ad_account_id: str,
    sync_mode: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    entry: Mapping[str, t.Any] | None = None,
    failure: str | None = None,
    refused: bool = False,
    customer_list_id: str | None = None,
    audience_id: str | None = None,
    counters: Mapping[str, t.Any] | None = None,
    secrets: Iterable[str | None] = (),
) -> RunRecord:
    """The history's row for one stream of one run.

    `entry`: the stream's STATE entry when it synced. `failure`: the message of a stream that
    failed (`refused`: it was refused, so nothing was sent for it), with the list and audience
    ids it got to before it failed. A stream with neither an entry nor a failure synced nothing
    (there is no such row: it is recorded as failed).
    """
    invalid = dict(sorted(read.invalid_by_reason.items()))
    common: dict[str, t.Any] = {
        "ad_account_id": ad_account_id,
        "stream": read.stream,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "sync_mode": sync_mode,
        "rows_read": read.rows,
        **call_counts(counters),
    }
    if entry is not None and failure is None:
        known = {k: entry.get(k) for k in (*STATE_KEYS, *MIRROR_KEYS) if k in entry}
        extra = {k: v for k, v in entry.items() if k not in known}
        known["ad_account_id"] = str(entry.get("ad_account_id") or ad_account_id)
        known["invalid_by_reason"] = dict(entry.get("invalid_by_reason") or {})
        known["pinterest_exceptions"] = dict(entry.get("pinterest_exceptions") or {})
        return RunRecord(**{**common, **known, "outcome": "synced", "extra": extra})
    return RunRecord(
        **common,
        outcome="refused" if refused else "failed",
        message=clean_message(failure or "the stream was not synced", secrets),
        segment_name=read.segment_name,
        customer_list_id=customer_list_id,
        audience_id=audience_id,
        list_type=read.list_type,
        records_invalid=sum(invalid.values()),
        invalid_by_reason=invalid,
    )
