"""The sync layer in-process: plans in, calls to a real emulator out, no SDK and no CLI.

Fast tests of `loading/` that build `StreamPlan`s directly; the end-to-end tests through the
CLI (tests/e2e/test_loader.py, tests/e2e/test_mirror.py, tests/e2e/test_resilience.py) cover
the same paths from Singer input.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.input.members import MemberSet
from target_pinterest_audiences.input.plan import StreamPlan
from target_pinterest_audiences.loading import RunOutcome, start_session
from target_pinterest_audiences.loading import run_streams as run_session
from target_pinterest_audiences.loading.changes import LedgerWriter
from target_pinterest_audiences.loading.resolve import create_once
from target_pinterest_audiences.pinterest import WriteOutcomeUnknown
from target_pinterest_audiences.settings import Settings, SyncMode, Tuning
from tests.conftest import AD_ACCOUNT, TOKEN, writes

LOG = logging.getLogger("test_loading")


def digests(numbers: range | list[int]) -> list[bytes]:
    return [hashlib.sha256(f"user{n}@example.com".encode()).digest() for n in numbers]


def plan(adds: list[bytes], removes: list[bytes] = (), name: str = "In Process") -> StreamPlan:  # type: ignore[assignment]
    return StreamPlan(
        stream="audience",
        segment_name=name,
        segment_id=None,
        list_type="EMAIL",
        adds=MemberSet.of(adds),
        removes=MemberSet.of(removes),
        rows=len(adds) + len(removes),
        invalid_by_reason={},
        rejected_identifiers={},
    )


def settings(emulator: PinterestEmulator, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "ad_account_id": AD_ACCOUNT,
        "access_token": TOKEN,
        "api_url": emulator.url,
        "records_per_request": 3,
        "work_dir": tmp_path / ".target-pinterest-audiences",
        "tuning": Tuning(retry_base_seconds=0.01, lost_create_settle_seconds=0.2),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def run_streams(settings: Settings, plans: list[StreamPlan], logger: logging.Logger) -> RunOutcome:
    with start_session(settings, logger) as session:
        return run_session(session, plans)


def members(emulator: PinterestEmulator, list_id: str) -> set[str]:
    return emulator.members(AD_ACCOUNT, list_id)


def hexes(blobs: list[bytes]) -> set[str]:
    return {d.hex() for d in blobs}


def test_explicit_creates_the_list_with_the_first_blob_then_sends_the_rest(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    outcome = run_streams(settings(emulator, tmp_path), [plan(digests(range(10)))], LOG)
    assert outcome.failures == []
    entry = outcome.entries["audience"]
    assert entry["records_added"] == 10 and entry["audience_id"] is not None
    assert members(emulator, entry["customer_list_id"]) == hexes(digests(range(10)))
    calls = [r for r in writes(emulator) if "customer_lists" in r.path]
    # one create of 3, then 3 + 3 + 1: the create's blob is never sent again
    assert [r.method for r in calls] == ["POST", "PATCH", "PATCH", "PATCH"]
    assert sorted(len(r.body["records"].split(",")) for r in calls) == [1, 3, 3, 3]
    assert len(calls[0].body["records"].split(",")) == 3


def test_explicit_reuses_the_list_and_applies_removes(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    config = settings(emulator, tmp_path)
    first = run_streams(config, [plan(digests(range(6)))], LOG).entries["audience"]
    second = run_streams(config, [plan(digests(range(6, 8)), digests(range(2)))], LOG)
    entry = second.entries["audience"]
    assert entry["customer_list_id"] == first["customer_list_id"]
    assert (entry["records_added"], entry["records_removed"]) == (2, 2)
    assert members(emulator, entry["customer_list_id"]) == hexes(digests(range(2, 8)))
    assert len(emulator.lists(AD_ACCOUNT)) == 1


def test_mirror_sends_exactly_the_difference_and_guards_removals(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    config = settings(emulator, tmp_path, sync_mode=SyncMode.MIRROR, max_removal_fraction=0.5)
    run_streams(config, [plan(digests(range(10)))], LOG)
    emulator.requests.clear()
    outcome = run_streams(config, [plan(digests(range(2, 12)))], LOG)
    entry = outcome.entries["audience"]
    assert (entry["records_added"], entry["records_removed"]) == (2, 2)
    assert members(emulator, entry["customer_list_id"]) == hexes(digests(range(2, 12)))
    emulator.requests.clear()
    refused = run_streams(config, [plan(digests(range(11, 13)))], LOG)
    assert refused.entries == {} and "max_removal_fraction=0.5" in refused.failures[0]
    assert writes(emulator) == []


def test_a_dry_run_counts_the_mirror_difference_and_writes_nothing(
    emulator: PinterestEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_streams(
        settings(emulator, tmp_path, sync_mode=SyncMode.MIRROR), [plan(digests(range(5)))], LOG
    )
    emulator.requests.clear()
    dry = settings(emulator, tmp_path, sync_mode=SyncMode.MIRROR, dry_run=True)
    outcome = run_streams(dry, [plan(digests(range(1, 7)))], LOG)
    assert outcome.entries == {} and outcome.failures == []
    assert "would add 2 and remove 1 member(s)" in capsys.readouterr().err
    assert writes(emulator) == []


def test_a_create_whose_answer_was_lost_is_found_and_completed_not_repeated(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    emulator.add_fault("drop_after", method="POST", path="customer_lists$")
    outcome = run_streams(settings(emulator, tmp_path), [plan(digests(range(7)))], LOG)
    assert outcome.failures == []
    (created,) = emulator.lists(AD_ACCOUNT)
    assert members(emulator, created["id"]) == hexes(digests(range(7)))


def test_a_refused_call_fails_its_stream_with_pinterests_words(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    emulator.add_fault("status", method="PATCH", status=400, code=1, message="bad records")
    outcome = run_streams(settings(emulator, tmp_path), [plan(digests(range(7)))], LOG)
    assert outcome.entries == {}
    (failure,) = outcome.failures
    assert failure.startswith("Stream 'audience' failed:") and "bad records" in failure


def test_create_once_looks_up_after_a_lost_answer_and_never_creates_twice() -> None:
    made: list[int] = []

    def create() -> int:
        made.append(1)
        raise WriteOutcomeUnknown("POST x", "read timeout")

    lost: list[int] = []
    found = create_once(create, lambda: 42, settle_seconds=0.0, on_lost=lambda: lost.append(1))
    assert found is not None and found.value == 42 and found.recovered
    assert made == [1] and lost == [1]
    nothing = create_once(create, lambda: None, settle_seconds=0.0, on_lost=lambda: None)
    assert nothing is None and len(made) == 4  # three attempts in all, each looked up after


# ---- Pinterest's refusals, call by call ---------------------------------------------------


def test_an_update_too_large_is_split_and_the_mirror_tally_counts_only_what_was_sent(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    from target_pinterest_audiences.ledger import open_ledger

    emulator.add_fault("status", method="PATCH", status=413, code=413, message="Too large.")
    one_at_a_time = Tuning(retry_base_seconds=0.01, calls_in_flight=1)  # the fault hits the 10
    config = settings(
        emulator,
        tmp_path,
        records_per_request=10,
        sync_mode=SyncMode.MIRROR,
        tuning=one_at_a_time,
    )
    outcome = run_streams(config, [plan(digests(range(25)))], LOG)
    assert outcome.failures == []
    (created,) = emulator.lists(AD_ACCOUNT)
    assert members(emulator, created["id"]) == hexes(digests(range(25)))
    patches = [r for r in writes(emulator) if r.method == "PATCH" and r.status == 200]
    sizes = [len(r.body["records"].split(",")) for r in patches]
    assert max(sizes) <= 5 and sum(sizes) == 15  # the create took 10; the rest went in halves
    with open_ledger(None, base_dir=tmp_path) as ledger:
        # Pinterest counted 25 uploaded records; the refused call must not count as sent.
        assert ledger.upload_tally(AD_ACCOUNT, created["id"]).accounted == 25


def test_records_pinterest_could_not_use_in_an_update_are_counted(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    emulator.declare_unusable({d.hex() for d in digests(range(20, 24))}, code=1002)
    outcome = run_streams(
        settings(emulator, tmp_path, records_per_request=10), [plan(digests(range(25)))], LOG
    )
    assert outcome.failures == []
    assert outcome.entries["audience"]["pinterest_exceptions"] == {"1002": 4}


def test_an_audience_whose_create_answer_is_lost_every_time_fails_the_stream(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    emulator.add_fault("drop_before", method="POST", path="/audiences$", times=3)
    outcome = run_streams(settings(emulator, tmp_path), [plan(digests(range(5)))], LOG)
    assert outcome.entries == {}  # audience_id null would claim Pinterest found the list too small
    (failure,) = outcome.failures
    assert "creating its audience failed three times" in failure
    assert emulator.audiences(AD_ACCOUNT) == []


def test_a_refusal_without_words_is_read_as_too_small_from_the_lists_status(
    emulator: PinterestEmulator, tmp_path: Path
) -> None:
    emulator.configure(min_matched_users=100)  # 5 members: the list is TOO_SMALL
    emulator.add_fault(
        "status", method="POST", path="/audiences$", status=400, code=2613, message="Invalid."
    )
    outcome = run_streams(settings(emulator, tmp_path), [plan(digests(range(5)))], LOG)
    assert outcome.failures == []
    entry = outcome.entries["audience"]
    assert entry["audience_id"] is None and entry["list_status"] == "TOO_SMALL"


# ---- the ledger written behind the calls -----------------------------------------------------


def test_ledger_writer_bounds_the_waiting_writes_and_reraises_a_failed_one() -> None:
    writer = LedgerWriter(threads=1, limit=2)
    gate, done = threading.Event(), []
    try:
        writer.submit(lambda: gate.wait(10) and None)
        writer.submit(lambda: done.append(1))
        third = threading.Thread(target=writer.submit, args=(lambda: done.append(2),))
        third.start()
        third.join(0.3)
        assert third.is_alive(), "a third write must wait while two are waiting"
        gate.set()
        third.join(10)
        writer.settle()
        assert done == [1, 2]

        def lost_database() -> None:
            raise RuntimeError("the ledger database went away")

        writer.submit(lost_database)
        with pytest.raises(RuntimeError, match="went away"):
            writer.settle()
    finally:
        gate.set()
        writer.close()
