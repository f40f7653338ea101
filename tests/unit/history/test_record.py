"""A stream's outcome as a history row (issue 19.1 and 19.6): the pure builder, and the
message cleaner's promise that no raw identifier and no secret reaches the history."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from target_pinterest_audiences.history.record import (
    MESSAGE_LIMIT,
    call_counts,
    clean_message,
    iso,
    run_record,
)
from target_pinterest_audiences.input.identifiers import normalize_device_id, normalize_email
from tests.unit.input.test_identifiers import emails as simple_emails

ACCOUNT = "549755885175"
STARTED = dt.datetime(2026, 11, 23, 23, 59, 58, 123456, tzinfo=dt.UTC)
FINISHED = dt.datetime(2026, 11, 24, 0, 0, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Read:
    stream: str = "holiday"
    segment_name: str | None = "Holiday Shoppers"
    list_type: str | None = "EMAIL"
    rows: int = 1000
    invalid_by_reason: dict[str, int] = field(default_factory=lambda: {"invalid_email": 3})


ENTRY = {
    "ad_account_id": ACCOUNT, "segment_name": "Holiday Shoppers", "customer_list_id": "643",
    "audience_id": "2542620905473", "list_type": "EMAIL", "records_added": 950,
    "records_removed": 12, "records_invalid": 3, "invalid_by_reason": {"invalid_email": 3},
    "pinterest_exceptions": {}, "list_status": "READY", "audience_status": "READY",
    "audience_size": 712, "members": 1000, "match_rate": 0.712,
    "synced_at": "2026-11-24T00:00:01Z", "lookalikes": [],
}  # fmt: skip


def test_times_are_iso_8601_in_utc() -> None:
    assert iso(STARTED) == "2026-11-23T23:59:58.123Z"
    paris = dt.timezone(dt.timedelta(hours=1))
    assert iso(dt.datetime(2026, 1, 1, 1, 0, tzinfo=paris)) == "2026-01-01T00:00:00.000Z"


def test_a_synced_stream_is_its_state_entry() -> None:
    record = run_record(
        Read(), ad_account_id=ACCOUNT, sync_mode="mirror", started_at=STARTED,
        finished_at=FINISHED, entry=ENTRY,
        counters={"reads": 1, "writes": 3, "retries": 1, "pacer_wait_seconds": 0.5},
    )  # fmt: skip
    assert record.outcome == "synced" and record.message is None
    assert record.state_entry() == ENTRY  # every key, the unknown `lookalikes` too
    assert (record.rows_read, record.calls, record.retries) == (1000, 4, 1)
    assert (record.started_at, record.finished_at) == (iso(STARTED), iso(FINISHED))


def test_a_failed_stream_keeps_what_was_read_and_the_message() -> None:
    message = "Stream 'holiday' failed: Pinterest answered HTTP 400 (code 2): bad request."
    record = run_record(
        Read(), ad_account_id=ACCOUNT, sync_mode="explicit", started_at=STARTED,
        finished_at=FINISHED, failure=message,
    )  # fmt: skip
    assert record.outcome == "failed" and record.message == message
    assert record.segment_name == "Holiday Shoppers" and record.customer_list_id is None
    assert record.records_invalid == 3 and record.invalid_by_reason == {"invalid_email": 3}
    refused = run_record(
        Read(), ad_account_id=ACCOUNT, sync_mode="mirror", started_at=STARTED,
        finished_at=FINISHED, failure="Stream 'holiday' was refused ...", refused=True,
    )  # fmt: skip
    assert refused.outcome == "refused"


def test_an_entry_with_a_failure_is_a_failure() -> None:
    record = run_record(
        Read(), ad_account_id=ACCOUNT, sync_mode="explicit", started_at=STARTED,
        finished_at=FINISHED, entry=ENTRY, failure="Stream 'holiday' failed: ...",
    )  # fmt: skip
    assert record.outcome == "failed"


def test_call_counts_of_a_streams_counters() -> None:
    counters = {"reads": 2, "writes": 7, "retries": 3, "pacer_wait_seconds": 2.2504}
    assert call_counts(counters) == {"calls": 9, "retries": 3, "quota_wait_seconds": 2.25}
    assert call_counts(None) == {"calls": None, "retries": None, "quota_wait_seconds": None}


# ---- no raw identifier, no secret -------------------------------------------------------------

international = st.sampled_from(["ünïcode@exämple.de", "x'y(z@example.co.uk", "a(@b.com"])
any_email = st.one_of(simple_emails, international).map(
    lambda e: e.upper() if len(e) % 3 == 0 else e
)
device_ids = st.uuids().map(lambda u: str(u).upper() if u.int % 2 else str(u))
around = st.text(max_size=40)


@given(before=around, email=any_email, after=around)
def test_no_email_address_survives_in_a_message(before: str, email: str, after: str) -> None:
    assert normalize_email(email) is not None  # one the target would load
    cleaned = clean_message(f"{before}{email}{after}")
    assert email not in cleaned and email.lower() not in cleaned.lower()


@given(before=around, device=device_ids, after=around)
def test_no_device_id_survives_in_a_message(before: str, device: str, after: str) -> None:
    assert normalize_device_id(device) is not None
    assert device.lower() not in clean_message(f"{before}{device}{after}").lower()


@given(
    before=around,
    secret=st.text(min_size=8, max_size=40).filter(lambda s: s.strip() == s),
    after=around,
)
def test_no_secret_survives_in_a_message(before: str, secret: str, after: str) -> None:
    assert secret not in clean_message(f"{before}{secret}{after}{secret}", [secret, None])


def test_a_message_without_identifiers_is_kept_as_it_is() -> None:
    message = (
        "Stream 'holiday' was refused and nothing was sent for it (on_invalid_record=fail): "
        "row 3 of stream 'holiday' (input line 5) is invalid: invalid_email; ledger_url "
        "'postgresql+psycopg://tpa:***@localhost:5432/ledger': connection refused."
    )
    assert clean_message(message) == message
    long = "x" * (MESSAGE_LIMIT + 100)
    assert len(clean_message(long)) == MESSAGE_LIMIT


@pytest.mark.parametrize("secret", ["test-access-token", str(uuid.uuid4())])
def test_a_failed_row_never_holds_a_secret(secret: str) -> None:
    record = run_record(
        Read(), ad_account_id=ACCOUNT, sync_mode="explicit", started_at=STARTED,
        finished_at=FINISHED, failure=f"token {secret} refused for user1@example.com",
        secrets=[secret],
    )  # fmt: skip
    assert secret not in str(record) and "user1@example.com" not in str(record)
