"""The ledger's schema: per-list upload tallies (issues 11.2 and 20.1), and the migration of
version-1 and version-2 ledgers in place, on SQLite and on PostgreSQL (through every later step
too)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from target_pinterest_audiences.ledger import Ledger, LedgerError, open_ledger
from target_pinterest_audiences.ledger.schema import SCHEMA_VERSION
from tests.ledger_releases import build_v1, schema_version
from tests.ledger_support import ACCOUNT, adds_of, blob, hs, new_list, sync

OTHER_ACCOUNT = "549755885176"


# ---- what the ledger can account for ----------------------------------------------------------


def test_accounted_records_add_up_per_list(ledger: Ledger) -> None:
    l1, l2 = new_list(), new_list()
    never = ledger.upload_tally(ACCOUNT, l1)  # a list the ledger never heard of
    assert (never.accounted, never.warned, never.recorded) == (0, 0, False)
    ledger.note_accounted(ACCOUNT, l1, 10_000)  # the create's first chunk
    ledger.note_accounted(ACCOUNT, l1, 10_000)  # an ADD call
    ledger.note_accounted(ACCOUNT, l1, 10_000)  # the same call again, after a lost answer
    ledger.note_accounted(ACCOUNT, l1, 0)
    ledger.note_accounted(ACCOUNT, l2, 3)
    assert ledger.upload_tally(ACCOUNT, l1).accounted == 30_000
    assert ledger.upload_tally(ACCOUNT, l2).accounted == 3
    assert ledger.upload_tally(OTHER_ACCOUNT, l1).recorded is False
    ledger.note_accounted(ACCOUNT, l2, -2)  # noted ahead, never sent: taken back
    assert ledger.upload_tally(ACCOUNT, l2).accounted == 1
    # the counts are not the membership: confirming and removing leave them alone
    sync(ledger, l1, hs(range(5)))
    sync(ledger, l1, hs(range(2)))
    assert ledger.upload_tally(ACCOUNT, l1).accounted == 30_000


def test_a_warning_is_noted_and_a_removal_takes_it_as_handled(ledger: Ledger) -> None:
    lst = new_list()
    ledger.note_accounted(ACCOUNT, lst, 100)
    ledger.note_warned(ACCOUNT, lst, 40)
    assert ledger.upload_tally(ACCOUNT, lst).warned == 40
    ledger.take_as_handled(ACCOUNT, lst, 40)
    tally = ledger.upload_tally(ACCOUNT, lst)
    assert (tally.accounted, tally.warned) == (140, 0)
    other = new_list()  # a warning about a list the target never uploaded to
    ledger.note_warned(ACCOUNT, other, 7)
    assert ledger.upload_tally(ACCOUNT, other).accounted == 0
    ledger.take_as_handled(ACCOUNT, other, 7)
    assert ledger.upload_tally(ACCOUNT, other).accounted == 7


def test_accounted_records_survive_reopening(fresh_url: str, tmp_path: Path) -> None:
    lst = new_list()
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        led.note_accounted(ACCOUNT, lst, 7)
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        led.note_accounted(ACCOUNT, lst, 5)
        assert led.upload_tally(ACCOUNT, lst).accounted == 12


# ---- migration -------------------------------------------------------------------------------


def test_a_version_1_ledger_is_migrated_in_place(fresh_url: str, tmp_path: Path) -> None:
    old, other = new_list(), new_list()
    build_v1(fresh_url, {(ACCOUNT, old): hs(range(20)), (OTHER_ACCOUNT, other): hs(range(3))})
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        # the members are all there, and the diff sees them
        assert led.count(ACCOUNT, old) == 20
        assert led.count(OTHER_ACCOUNT, other) == 3
        with led.diff(ACCOUNT, old, hs(range(10, 25))) as diff:
            assert (diff.known_count, diff.add_count, diff.remove_count) == (20, 5, 10)
            assert adds_of(diff) == sorted(hs(range(20, 25)))
        # what was uploaded to the lists it had was never counted: unknown until settled
        for account, lst in ((ACCOUNT, old), (OTHER_ACCOUNT, other)):
            tally = led.upload_tally(account, lst)
            assert (tally.accounted, tally.legacy_net, tally.recorded) == (None, None, True)
        led.settle_accounted(ACCOUNT, old, 100)
        led.settle_accounted(ACCOUNT, old, 999)  # settled once
        assert led.upload_tally(ACCOUNT, old).accounted == 100
        # a list recorded from now on is counted
        new = new_list()
        led.confirm_added(ACCOUNT, new, blob(range(4)))
        led.note_accounted(ACCOUNT, new, 4)
        assert led.upload_tally(ACCOUNT, new).accounted == 4
    assert schema_version(fresh_url) == SCHEMA_VERSION
    with open_ledger(fresh_url, base_dir=tmp_path) as led:  # a second opening migrates nothing
        assert led.upload_tally(OTHER_ACCOUNT, other).accounted is None
        assert led.upload_tally(ACCOUNT, new).accounted == 4


def test_a_version_2_ledger_is_migrated_in_place(fresh_url: str, tmp_path: Path) -> None:
    """A ledger the previous release wrote: its net upload counts are kept, to be settled."""
    counted, unknown = new_list(), new_list()
    build_v1(fresh_url, {(ACCOUNT, counted): hs(range(6)), (ACCOUNT, unknown): hs(range(2))})
    engine = sa.create_engine(fresh_url)
    try:
        with engine.begin() as conn:  # what version 2 added, as it added it
            conn.exec_driver_sql(
                "CREATE TABLE tpa_ledger_uploads (ad_account_id TEXT NOT NULL, list_key TEXT "
                "NOT NULL, uploaded BIGINT, PRIMARY KEY (ad_account_id, list_key))"
            )
            conn.execute(
                sa.text(
                    "INSERT INTO tpa_ledger_uploads (ad_account_id, list_key, uploaded) "
                    "VALUES (:a, :c, 9), (:a, :u, NULL)"
                ),
                {"a": ACCOUNT, "c": counted, "u": unknown},
            )
            conn.exec_driver_sql(
                "UPDATE tpa_ledger_meta SET value = '2' WHERE key = 'schema_version'"
            )
    finally:
        engine.dispose()
    with open_ledger(fresh_url, base_dir=tmp_path) as led:
        assert led.count(ACCOUNT, counted) == 6
        tally = led.upload_tally(ACCOUNT, counted)
        assert (tally.accounted, tally.legacy_net, tally.warned) == (None, 9, 0)
        assert led.upload_tally(ACCOUNT, unknown).legacy_net is None
        led.note_warned(ACCOUNT, counted, 3)
        assert led.upload_tally(ACCOUNT, counted).warned == 3
        token_store = led.refresh_token_store("client")  # version 2's refresh tokens work
        assert token_store is not None
    assert schema_version(fresh_url) == SCHEMA_VERSION


def opened_at_once(ledgers: list[Ledger], account: str, lst: str) -> list[object]:
    """Each ledger's first call (opening it), all at the same moment, then closed: what each
    call answered, or the error it raised."""
    start = threading.Barrier(len(ledgers))
    results: list[object] = []

    def open_it(led: Ledger) -> None:
        start.wait()
        try:
            results.append(led.upload_tally(account, lst).accounted)
        except Exception as exc:  # reported by the caller's assertion
            results.append(exc)

    threads = [threading.Thread(target=open_it, args=(led,)) for led in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for led in ledgers:
        led.close()
    return results


def test_two_runs_opening_a_version_1_ledger_at_once_migrate_it_once(
    fresh_url: str, tmp_path: Path
) -> None:
    lst = new_list()
    build_v1(fresh_url, {(ACCOUNT, lst): hs(range(5))})
    ledgers = [open_ledger(fresh_url, base_dir=tmp_path) for _ in range(2)]
    assert opened_at_once(ledgers, ACCOUNT, lst) == [None, None]
    assert schema_version(fresh_url) == SCHEMA_VERSION


def test_runs_opening_a_new_sqlite_ledger_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching a new file into WAL mode is refused at once ("database is locked") while
    another connection switches it: every run still opens the ledger (20 rounds of 3 runs;
    without the retry, about one round in eight had a run fail)."""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path}/{round_}/ledger.sqlite"
        ledgers = [open_ledger(url, base_dir=tmp_path / str(round_)) for _ in range(3)]
        assert opened_at_once(ledgers, ACCOUNT, "list") == [0, 0, 0], f"round {round_}"


def test_a_ledger_of_an_unknown_version_is_refused_untouched(
    fresh_url: str, tmp_path: Path
) -> None:
    lst = new_list()
    newer = str(int(SCHEMA_VERSION) + 1)  # written by a newer release
    build_v1(fresh_url, {(ACCOUNT, lst): hs(range(5))}, version=newer)
    led = open_ledger(fresh_url, base_dir=tmp_path)
    with pytest.raises(LedgerError) as err:
        led.count(ACCOUNT, lst)
    led.close()
    assert "ledger_url" in str(err.value) and f"schema version {newer}" in str(err.value)
    assert f"needs {SCHEMA_VERSION}" in str(err.value)
    assert schema_version(fresh_url) == newer
    engine = sa.create_engine(fresh_url)
    try:
        tables = sa.inspect(engine).get_table_names()
        assert "tpa_ledger_uploads" not in tables and "tpa_ledger_runs" not in tables
    finally:
        engine.dispose()
