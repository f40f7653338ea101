"""The run history in the ledger (schema version 3, issue 19.1): its migration steps, the
upgrade of a version-2 ledger in place, and its reads and writes on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from target_pinterest_audiences.ledger import Ledger, RunRecord, open_ledger
from target_pinterest_audiences.ledger.schema import BASE_VERSION, MIGRATIONS, SCHEMA_VERSION
from tests.ledger_releases import build_v2, schema_version
from tests.ledger_support import ACCOUNT, adds_of, blob, hs, new_list

OTHER_ACCOUNT = "549755885176"


def run(stream: str = "holiday", n: int = 0, **values: object) -> RunRecord:
    base: dict[str, object] = {
        "ad_account_id": ACCOUNT,
        "stream": stream,
        "started_at": f"2026-11-{n % 28 + 1:02d}T10:00:00.000Z",
        "finished_at": f"2026-11-{n % 28 + 1:02d}T10:00:01.250Z",
        "outcome": "synced",
        "sync_mode": "mirror",
        "segment_name": "Holiday Shoppers",
        "customer_list_id": "643",
        "audience_id": "2542620905473",
        "list_type": "EMAIL",
        "rows_read": 1000 + n,
        "records_added": 950,
        "records_removed": 12,
        "records_invalid": 38,
        "invalid_by_reason": {"invalid_email": 37, "missing_identifier": 1},
        "pinterest_exceptions": {"1001": 2},
        "list_status": "READY",
        "audience_status": "READY",
        "audience_size": 712,
        "members": 1000,
        "match_rate": 0.712,
        "synced_at": "2026-11-23T23:59:59Z",
        "calls": 7,
        "retries": 1,
        "quota_wait_seconds": 0.25,
        "extra": {"lookalikes": [{"country": "US", "percentage": 5, "audience_id": None}]},
    }
    base.update(values)
    return RunRecord(**base)  # type: ignore[arg-type]


# ---- the migration steps ----------------------------------------------------------------------


def test_migration_steps_go_one_version_at_a_time() -> None:
    """`schema.py` is a list of steps (a parallel branch adds its own): each brings the ledger
    to the next version, and the last is the version the target writes."""
    versions = [BASE_VERSION, *(step.version for step in MIGRATIONS)]
    assert versions == [str(n) for n in range(1, len(versions) + 1)]
    assert versions[-1] == SCHEMA_VERSION
    assert "3" in versions  # the run history


def test_a_version_2_ledger_upgrades_in_place(fresh_url: str, tmp_path: Path) -> None:
    """A ledger of the release before the history: its members, upload counts and refresh
    token are all still there after the upgrade, and the history is empty and usable."""
    mirrored, other = new_list(), new_list()
    build_v2(
        fresh_url,
        {(ACCOUNT, mirrored): hs(range(20)), (OTHER_ACCOUNT, other): hs(range(3))},
        uploads={(ACCOUNT, mirrored): 20, (OTHER_ACCOUNT, other): None},
        refresh_token=("test-client-id", "kept-refresh-token"),
    )
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        assert led.history().runs() == []
        assert led.count(ACCOUNT, mirrored) == 20 and led.count(OTHER_ACCOUNT, other) == 3
        with led.diff(ACCOUNT, mirrored, hs(range(10, 25))) as diff:
            assert (diff.known_count, diff.add_count, diff.remove_count) == (20, 5, 10)
            assert adds_of(diff) == sorted(hs(range(20, 25)))
        assert led.upload_tally(ACCOUNT, mirrored).legacy_net == 20  # carried over, as it was
        assert led.upload_tally(OTHER_ACCOUNT, other).legacy_net is None  # unknown stays so
        stored = led.refresh_token_store("test-client-id").load()
        assert stored is not None and stored.refresh_token == "kept-refresh-token"
        led.history().add(run(customer_list_id=mirrored))
        assert [r.customer_list_id for r in led.history().runs()] == [mirrored]
    assert schema_version(fresh_url) == SCHEMA_VERSION
    with open_ledger(fresh_url, base_dir=tmp_path) as led:  # opening again migrates nothing
        assert len(led.history().runs()) == 1
        assert led.count(ACCOUNT, mirrored) == 20


def test_a_new_ledger_is_made_through_the_same_steps(fresh_url: str, tmp_path: Path) -> None:
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        led.confirm_added(ACCOUNT, "1", blob(range(3)))
        led.history().add(run())
    assert schema_version(fresh_url) == SCHEMA_VERSION
    engine = sa.create_engine(fresh_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"tpa_ledger_members", "tpa_ledger_uploads", "tpa_ledger_runs"} <= tables


# ---- reads and writes ---------------------------------------------------------------------------


def test_a_run_reads_back_as_it_was_written(ledger: Ledger) -> None:
    written = run()
    ledger.history().add(written)
    (read,) = ledger.history().runs()
    assert read.id is not None
    assert read == RunRecord(**{**written.__dict__, "id": read.id})


def test_runs_come_back_oldest_first_and_by_stream(ledger: Ledger) -> None:
    history = ledger.history()
    for n in range(6):
        history.add(run("holiday" if n % 2 else "lapsed", n, rows_read=n))
    assert [r.rows_read for r in history.runs()] == [0, 1, 2, 3, 4, 5]
    assert [r.rows_read for r in history.runs(["holiday"])] == [1, 3, 5]
    assert [r.rows_read for r in history.runs(["lapsed", "nobody"])] == [0, 2, 4]
    assert history.runs([]) == []


def test_last_run_by_ad_account_and_stream(ledger: Ledger) -> None:
    history = ledger.history()
    assert history.last(ACCOUNT, "holiday") is None
    history.add(run(customer_list_id="100"))
    history.add(run(customer_list_id="200"))
    history.add(run(ad_account_id=OTHER_ACCOUNT, customer_list_id="900"))
    history.add(run("lapsed", customer_list_id="300"))
    # a run that failed before it found its list names none
    failed = "Stream 'holiday' failed: ..."
    history.add(run(outcome="failed", message=failed, customer_list_id=None))
    last = history.last(ACCOUNT, "holiday")
    assert last is not None and last.outcome == "failed" and last.customer_list_id is None
    with_list = history.last(ACCOUNT, "holiday", with_list=True)
    assert with_list is not None and with_list.customer_list_id == "200"
    other = history.last(OTHER_ACCOUNT, "holiday", with_list=True)
    assert other is not None and other.customer_list_id == "900"


def test_a_failed_run_keeps_its_message_and_nulls(ledger: Ledger) -> None:
    failed = RunRecord(
        ad_account_id=ACCOUNT,
        stream="holiday",
        started_at="2026-11-23T10:00:00.000Z",
        finished_at="2026-11-23T10:00:02.000Z",
        outcome="failed",
        sync_mode="explicit",
        message="Stream 'holiday' failed: Pinterest refused the call (HTTP 400).",
        rows_read=10,
    )
    ledger.history().add(failed)
    (read,) = ledger.history().runs()
    assert read.message == failed.message and read.audience_size is None
    assert read.invalid_by_reason == {} and read.extra == {}
    entry = read.state_entry()
    assert entry["customer_list_id"] is None and "members" not in entry


def test_the_state_entry_of_a_run(ledger: Ledger) -> None:
    ledger.history().add(run())
    ledger.history().add(run(sync_mode="explicit", members=None, match_rate=None, extra={}))
    mirror, explicit = (r.state_entry() for r in ledger.history().runs())
    assert mirror["members"] == 1000 and mirror["match_rate"] == 0.712
    assert mirror["lookalikes"] == [{"country": "US", "percentage": 5, "audience_id": None}]
    assert "members" not in explicit and "match_rate" not in explicit
    as_json = ledger.history().runs()[0].as_json()
    assert list(as_json)[:4] == ["finished_at", "sync_mode", "outcome", "message"]
