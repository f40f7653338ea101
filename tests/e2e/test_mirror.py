"""Issue 4, "Mirror mode", end to end: the real CLI against the emulator, on both ledger back ends.

Every test runs twice: ``sqlite`` (no ``ledger_url``: the ledger file appears under the run's
working directory in ``.target-pinterest-audiences/``) and ``postgres`` (``ledger_url`` points
at a fresh database on the throwaway server of ``tests/pg.py``).

Test-only knobs (hidden config keys): ``_calls_in_flight`` (1 makes the order of calls
deterministic for the crash tests) and ``_ledger_lock_wait_seconds`` (how long a run waits for
another run's lock on the same list before failing, default 30 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import (
    AD_ACCOUNT,
    Run,
    TargetRunner,
    audience_messages,
    emails,
    record_message,
    schema_message,
    sha,
)

FAST = {"_retry_base_seconds": 0.02, "_lost_create_settle_seconds": 2.0}
LEDGER_FILE = Path(".target-pinterest-audiences") / "ledger.sqlite"


# ---- the two back ends --------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    workdir: Path
    ledger_url: str | None = None
    _engines: list[sa.Engine] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return {"ledger_url": self.ledger_url} if self.ledger_url else {}

    def _url(self) -> str:
        if self.ledger_url:
            return self.ledger_url
        return f"sqlite:///{self.workdir / LEDGER_FILE}"

    def members(self, list_id: str, account: str = AD_ACCOUNT) -> set[str]:
        """The hex hashes the ledger holds for one list."""
        engine = sa.create_engine(self._url())
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT member FROM tpa_ledger_members "
                        "WHERE ad_account_id = :a AND list_key = :l"
                    ),
                    {"a": account, "l": list_id},
                ).all()
        finally:
            engine.dispose()
        return {bytes(row[0]).hex() for row in rows}

    def check_where_it_lives(self, raw: list[str]) -> None:
        """SQLite: the default file under the working dir, hashes only. PostgreSQL: no file."""
        path = self.workdir / LEDGER_FILE
        if self.ledger_url:
            assert not path.exists(), "ledger_url was set, yet a SQLite ledger was written"
            return
        assert path.is_file(), list(self.workdir.rglob("*"))
        blob = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
        for address in raw:
            assert address.encode() not in blob, "a raw identifier was written to the ledger"
        engine = sa.create_engine(self._url())
        try:
            with engine.connect() as conn:
                members = [
                    bytes(r[0])
                    for r in conn.execute(sa.text("SELECT member FROM tpa_ledger_members"))
                ]
        finally:
            engine.dispose()
        assert members and all(len(m) == 32 for m in members)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, target: TargetRunner) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", target.workdir)
        return
    base = str(request.getfixturevalue("postgres_url"))
    dbname = f"tpa_mirror_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
    url = sa.make_url(base).set(database=dbname).render_as_string(hide_password=False)
    try:
        yield Backend("postgres", target.workdir, url)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.dispose()


# ---- helpers --------------------------------------------------------------------------------


def hashes(addresses: list[str]) -> set[str]:
    return {sha(a) for a in addresses}


def sent(emulator: PinterestEmulator, since: int = 0) -> tuple[list[str], list[str]]:
    """Member hashes of every accepted ADD (incl. a list create's first chunk) and REMOVE."""
    adds: list[str] = []
    removes: list[str] = []
    for r in emulator.requests[since:]:
        if r.status != 200 or not isinstance(r.body, dict) or "records" not in r.body:
            continue
        records = [x.strip() for x in r.body["records"].split(",") if x.strip()]
        if r.method == "POST" and r.path.endswith("/customer_lists"):
            adds += records
        elif r.method == "PATCH":
            (adds if r.body["operation_type"] == "ADD" else removes).extend(records)
    return adds, removes


def only_list(emulator: PinterestEmulator) -> str:
    lists = emulator.lists(AD_ACCOUNT)
    assert len(lists) == 1, lists
    return str(lists[0]["id"])


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    return run


def refused(run: Run) -> Run:
    assert run.returncode != 0, run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    assert run.states == [], "STATE claimed work that was refused"
    return run


class Mirror:
    """Mirror-mode runs of the real CLI on one back end (foreground or in the background)."""

    def __init__(self, target: TargetRunner, backend: Backend) -> None:
        self.target = target
        self.backend = backend
        self._n = 0

    def settings(self, **config: Any) -> dict[str, Any]:
        return {"sync_mode": "mirror", **FAST, **self.backend.config, **config}

    def run(self, messages: list[dict[str, Any]], **config: Any) -> Run:
        return self.target.run(messages, **self.settings(**config))

    def start(self, messages: list[dict[str, Any]], **config: Any) -> subprocess.Popen[bytes]:
        self._n += 1
        workdir = self.target.workdir
        cfg, inp = workdir / f"bg{self._n}.json", workdir / f"bg{self._n}.jsonl"
        cfg.write_text(json.dumps(self.target.config(**self.settings(**config))))
        inp.write_text("".join(json.dumps(m) + "\n" for m in messages))
        with inp.open("rb") as stdin:
            return subprocess.Popen(
                [sys.executable, "-m", "target_pinterest_audiences", "--config", cfg.name],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
            )


@pytest.fixture
def mirror(target: TargetRunner, backend: Backend) -> Mirror:
    return Mirror(target, backend)


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the awaited point"
        assert time.monotonic() < deadline, "the awaited point was never reached"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def accepted_patches(emulator: PinterestEmulator, since: int = 0) -> int:
    return sum(1 for r in emulator.requests[since:] if r.method == "PATCH" and r.status == 200)


# A = user0..user11, B = user4..user15: 4 new, 4 gone (a third of the list, under the guard).
A = emails(12)
B = emails(12, start=4)


# ---- 1 + 7. A then B: exactly the difference, counted in STATE -------------------------------


def test_a_then_b_adds_exactly_b_minus_a_and_removes_exactly_a_minus_b(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    first = ok(mirror.run(audience_messages("audience", "Mirror", A), records_per_request=3))
    list_id = only_list(emulator)
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(A)
    adds, removes = sent(emulator)
    assert sorted(adds) == sorted(hashes(A)) and removes == []
    assert first.entry()["records_added"] == len(A)
    assert first.entry()["records_removed"] == 0
    assert backend.members(list_id) == hashes(A)
    backend.check_where_it_lives(A)

    mark = len(emulator.requests)
    second = ok(mirror.run(audience_messages("audience", "Mirror", B), records_per_request=3))
    assert only_list(emulator) == list_id
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(B)
    adds, removes = sent(emulator, mark)
    assert sorted(adds) == sorted(hashes(sorted(set(B) - set(A))))  # each sent once
    assert sorted(removes) == sorted(hashes(sorted(set(A) - set(B))))
    entry = second.entry()
    assert entry["customer_list_id"] == list_id
    assert entry["records_added"] == len(set(B) - set(A)) == 4
    assert entry["records_removed"] == len(set(A) - set(B)) == 4
    assert backend.members(list_id) == hashes(B)
    backend.check_where_it_lives(A + B)

    mark = len(emulator.requests)
    third = ok(mirror.run(audience_messages("audience", "Mirror", B), records_per_request=3))
    assert [r for r in emulator.requests[mark:] if r.method in ("POST", "PATCH")] == []
    assert third.entry()["records_added"] == third.entry()["records_removed"] == 0


def test_a_member_whose_last_row_says_remove_is_left_out_of_the_list(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    # Issue 11.1: mirror mode honours the action column (the contract's "Input").
    ok(mirror.run(audience_messages("audience", "Actions", A)))
    list_id = only_list(emulator)
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(A)
    messages = [schema_message()]
    kept, invalid, removed_rows = [], 0, 0
    for n, address in enumerate(B):
        action = ["remove", "ADD", None, "bogus"][n % 4]
        row: dict[str, Any] = {"segment_name": "Actions", "email": address}
        if action is not None:
            row["action"] = action
        messages.append(record_message(**row))
        kept += [address] if action in ("ADD", None) else []
        invalid += action == "bogus"
        removed_rows += action == "remove"
    # a member added, then removed by a later row: its last row wins, it is left out
    messages.append(record_message(segment_name="Actions", email=B[1], action="remove"))
    kept.remove(B[1])
    removed_rows += 1
    run = ok(mirror.run(messages, max_removal_fraction=1.0))
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(kept)
    assert backend.members(list_id) == hashes(kept)
    assert run.entry()["records_invalid"] == invalid
    (summary,) = [line for line in run.stderr.splitlines() if "Summary: stream" in line]
    entry = run.entry()
    assert (
        f"the list should now hold {len(kept)} members ({entry['records_added']} joined, "
        f"{entry['records_removed']} left, {removed_rows} left out by remove rows)"
    ) in summary
    dry = ok(mirror.run(messages, dry_run=True))
    assert f"{removed_rows} left out by remove rows" in dry.stderr


def test_a_stream_naming_an_existing_list_by_segment_id(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    list_id = emulator.seed_list(AD_ACCOUNT, "Made in the UI", set())
    ok(mirror.run(audience_messages("audience", None, A, segment_id=list_id)))
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(A)
    mark = len(emulator.requests)
    run = ok(mirror.run(audience_messages("audience", None, B, segment_id=list_id)))
    assert only_list(emulator) == list_id  # no list was created
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(B)
    adds, removes = sent(emulator, mark)
    assert sorted(adds) == sorted(hashes(sorted(set(B) - set(A))))
    assert sorted(removes) == sorted(hashes(sorted(set(A) - set(B))))
    assert run.entry()["customer_list_id"] == list_id
    assert backend.members(list_id) == hashes(B)


# ---- 2. Crash safety: SIGKILL during run 2, rerun ----------------------------------------------


@pytest.mark.parametrize("after", [1, 3])
def test_sigkill_during_run_2_then_rerun_completes_it(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend, after: int
) -> None:
    # chunks of 2, one call at a time: B-A is 2 ADD calls, then A-B is 2 REMOVE calls;
    # the kill lands between the adds (after=1) or between the removes (after=3)
    slow = {"records_per_request": 2, "_calls_in_flight": 1}
    ok(mirror.run(audience_messages("audience", "Crash", A), **slow))
    list_id = only_list(emulator)
    mark = len(emulator.requests)
    emulator.add_fault("latency", method="PATCH", seconds=0.2, times=None)
    proc = mirror.start(audience_messages("audience", "Crash", B), **slow)
    wait_for(lambda: accepted_patches(emulator, mark) >= after, proc)
    os.kill(proc.pid, signal.SIGKILL)
    code, out, _err = finish(proc)
    assert code == -signal.SIGKILL
    assert out.strip() == ""  # no STATE from the killed run
    middle = emulator.members(AD_ACCOUNT, list_id)
    assert middle not in (hashes(A), hashes(B)), "the kill did not land mid-run"
    time.sleep(0.5)  # the call in flight at the kill lands (unconfirmed in the ledger)
    # the ledger never holds a member whose ADD Pinterest has not accepted
    assert backend.members(list_id) <= hashes(A) | hashes(B)
    emulator.clear_faults()

    mark = len(emulator.requests)
    rerun = ok(mirror.run(audience_messages("audience", "Crash", B), **slow))
    assert only_list(emulator) == list_id
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(B)
    assert backend.members(list_id) == hashes(B)
    adds, removes = sent(emulator, mark)
    # the rerun's STATE counts what this run sent, not the whole difference
    assert rerun.entry()["records_added"] == len(adds)
    assert rerun.entry()["records_removed"] == len(removes)
    assert set(adds) <= hashes(B) and set(removes) <= hashes(A) - hashes(B)

    mark = len(emulator.requests)
    third = ok(mirror.run(audience_messages("audience", "Crash", B), **slow))
    assert [r for r in emulator.requests[mark:] if r.method in ("POST", "PATCH")] == []
    assert third.entry()["records_added"] == third.entry()["records_removed"] == 0


# ---- 4. The guard against wiping a list ---------------------------------------------------------


def test_guard_refuses_removing_90_percent_then_the_override_lets_it_through(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    everyone = emails(20)
    ok(mirror.run(audience_messages("audience", "Guarded", everyone)))
    list_id = only_list(emulator)
    survivors = everyone[:2]  # a broken upstream query: 18 of 20 (90%) would go

    mark = len(emulator.requests)
    run = refused(mirror.run(audience_messages("audience", "Guarded", survivors)))
    assert [r for r in emulator.requests[mark:] if r.method in ("POST", "PATCH")] == []
    assert "remove 18 of the 20" in run.stderr
    assert "max_removal_fraction" in run.stderr
    assert "1.0" in run.stderr  # how to override
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(everyone)
    assert backend.members(list_id) == hashes(everyone)

    # a stricter setting is honoured too; 0.95 lets 90% through
    refused(
        mirror.run(audience_messages("audience", "Guarded", survivors), max_removal_fraction=0.8)
    )
    mark = len(emulator.requests)
    run = ok(
        mirror.run(audience_messages("audience", "Guarded", survivors), max_removal_fraction=1.0)
    )
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(survivors)
    adds, removes = sent(emulator, mark)
    assert adds == [] and sorted(removes) == sorted(hashes(everyone[2:]))
    assert run.entry()["records_removed"] == 18
    assert backend.members(list_id) == hashes(survivors)


def test_an_empty_stream_is_refused(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    ok(mirror.run(audience_messages("audience", "Empty", A)))
    list_id = only_list(emulator)
    mark = len(emulator.requests)

    # a SCHEMA and not one record
    run = refused(mirror.run([schema_message()]))
    assert "audience" in run.stderr and "refused" in run.stderr

    # rows that are all invalid: the valid membership is empty
    invalid = [schema_message()] + [
        record_message(segment_name="Empty", email=f"not-an-address-{n}") for n in range(5)
    ]
    run = refused(mirror.run(invalid))
    assert "empty" in run.stderr
    assert str(len(A)) in run.stderr  # how many members it would remove
    # the guard switched off does not make an empty stream acceptable
    refused(mirror.run(invalid, max_removal_fraction=1.0))

    assert [r for r in emulator.requests[mark:] if r.method in ("POST", "PATCH")] == []
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(A)
    assert backend.members(list_id) == hashes(A)


# ---- 5. Two runs at once on the same list -------------------------------------------------------


@pytest.mark.parametrize("second_by", ["name", "segment_id"])
def test_two_runs_at_once_the_second_fails_clearly_or_waits(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend, second_by: str
) -> None:
    ok(mirror.run(audience_messages("audience", "Busy", A[:1])))
    list_id = only_list(emulator)
    # the first run takes about 11 x 0.8 s: time for the impatient run to start (a Python
    # process, the SDK, the access check, the ledger) and give up, on a loaded machine too
    emulator.add_fault("latency", method="PATCH", seconds=0.8, times=None)
    slow = {"records_per_request": 1, "_calls_in_flight": 1}

    def stream(addresses: list[str]) -> list[dict[str, Any]]:
        if second_by == "name":
            return audience_messages("audience", "Busy", addresses)
        return audience_messages("audience", None, addresses, segment_id=list_id)

    mark = len(emulator.requests)
    first = mirror.start(audience_messages("audience", "Busy", A), **slow)
    wait_for(lambda: accepted_patches(emulator, mark) >= 1, first)
    impatient = mirror.start(stream(B), _ledger_lock_wait_seconds=0.5)
    patient = mirror.start(stream(B), _ledger_lock_wait_seconds=60)
    code, out, err = finish(impatient)
    assert first.poll() is None, "the first run ended before the impatient one gave up"
    assert code != 0 and out.strip() == "", err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "another run" in err, err[-3000:]
    code, out, err = finish(first)
    assert code == 0, err[-3000:]
    code, out, err = finish(patient)
    assert code == 0, err[-3000:]
    entry = json.loads(out.splitlines()[-1])["pinterest_audiences"]["audience"]
    assert entry["customer_list_id"] == list_id

    # the patient run wrote nothing before the first run's last write: it waited
    patches = [r for r in emulator.requests[mark:] if r.method == "PATCH"]
    new_in_b = hashes(sorted(set(B) - set(A)))
    mine = [
        r
        for r in patches
        if r.body["operation_type"] == "REMOVE" or set(r.body["records"].split(",")) & new_in_b
    ]
    theirs = [r for r in patches if r not in mine]
    assert mine and len(theirs) == len(A) - 1
    assert max(r.time for r in theirs) < min(r.time for r in mine)
    assert only_list(emulator) == list_id
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(B)
    assert backend.members(list_id) == hashes(B)


def test_two_runs_creating_one_new_list_at_once_make_one_list(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    # The second run reads the account while the first one's create is on its way (slow): its
    # index has no such list. It waits for the first run's lock, then reads the account again
    # instead of trusting what it read at the start, and finds the list.
    emulator.add_fault("latency", method="POST", path=r"/customer_lists$", seconds=4)
    first = mirror.start(audience_messages("audience", "Fresh", A))
    wait_for(lambda: bool(emulator.faults_fired), first)
    second = mirror.start(audience_messages("audience", "Fresh", B), _ledger_lock_wait_seconds=60)
    wait_for(lambda: len(emulator.requests) >= 6, second)  # the second run read the account
    assert emulator.lists(AD_ACCOUNT) == []
    code, _, err = finish(first)
    assert code == 0, err[-3000:]
    code, _, err = finish(second)
    assert code == 0, err[-3000:]
    list_id = only_list(emulator)  # one list, not two
    assert len(emulator.audiences(AD_ACCOUNT)) == 1
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(B)
    assert backend.members(list_id) == hashes(B)


def test_many_mirror_streams_side_by_side_share_the_ledger(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    def messages(shift: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for n in range(24):
            out += audience_messages(f"s{n}", f"Mirror {n}", emails(40, start=n * 100 + shift))
        return out

    ok(mirror.run(messages(0), records_per_request=7))
    ok(mirror.run(messages(10), records_per_request=7, max_removal_fraction=1.0))
    lists = {x["name"]: x["id"] for x in emulator.lists(AD_ACCOUNT)}
    assert len(lists) == 24
    for n in range(24):
        expected = hashes(emails(40, start=n * 100 + 10))
        assert emulator.members(AD_ACCOUNT, lists[f"Mirror {n}"]) == expected
        assert backend.members(lists[f"Mirror {n}"]) == expected


# ---- 6. First run on a list with outside members ------------------------------------------------


# The whole story (explicit runs first, another tool, the ways out): test_outside_members.py


def test_a_list_only_mirror_mode_filled_never_warns(
    mirror: Mirror, emulator: PinterestEmulator
) -> None:
    for members in (A, B, A):
        run = ok(mirror.run(audience_messages("audience", "Ours", members)))
        assert "has no record of" not in run.stderr


# ---- 7. dry_run ----------------------------------------------------------------------------------


def test_dry_run_prints_the_planned_diff_and_writes_nothing(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    ok(mirror.run(audience_messages("audience", "Dry", A)))
    list_id = only_list(emulator)
    mark = len(emulator.requests)
    run = ok(mirror.run(audience_messages("audience", "Dry", B), dry_run=True))
    assert "would add 4 and remove 4" in run.stderr, run.stderr[-3000:]
    assert run.states == []
    assert [r for r in emulator.requests[mark:] if r.method in ("POST", "PATCH")] == []
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(A)
    assert backend.members(list_id) == hashes(A)

    mark = len(emulator.requests)
    run = ok(mirror.run(audience_messages("audience", "Dry", B)))
    adds, removes = sent(emulator, mark)
    assert sorted(adds) == sorted(hashes(sorted(set(B) - set(A))))
    assert sorted(removes) == sorted(hashes(sorted(set(A) - set(B))))
    assert run.entry()["records_added"] == run.entry()["records_removed"] == 4


# ---- the ledger's own errors are clear messages, never tracebacks ---------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://someone@localhost/ledger", "unsupported database"),
        ("postgresql+psycopg://someone:pw-Zq81yy@127.0.0.1:1/ledger", "cannot open the ledger"),
    ],
)
def test_a_bad_ledger_url_fails_with_a_message_naming_the_setting(
    target: TargetRunner, emulator: PinterestEmulator, url: str, expected: str
) -> None:
    run = refused(
        target.run(
            audience_messages("audience", "Nowhere", A), sync_mode="mirror", ledger_url=url, **FAST
        )
    )
    assert "ledger_url" in run.stderr and expected in run.stderr, run.stderr[-3000:]
    assert "pw-Zq81yy" not in run.stderr + run.stdout
    assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
