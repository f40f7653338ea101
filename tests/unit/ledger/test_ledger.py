"""Tests for the mirror-mode membership ledger, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.input.members import MemberSet
from target_pinterest_audiences.ledger import (
    Ledger,
    LedgerBusy,
    LedgerError,
    Partitioned,
    open_ledger,
)
from target_pinterest_audiences.ledger.base import Created
from tests.ledger_support import (
    ACCOUNT,
    ROOT,
    adds_of,
    blob,
    h,
    hs,
    new_list,
    removes_of,
    split,
    sync,
)
from tests.pg import postgres_url  # noqa: F401  (session fixture)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/ledger/ledger.sqlite"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def ledger(url: str, tmp_path: Path) -> Iterator[Ledger]:
    led = open_ledger(url, base_dir=tmp_path)
    yield led
    led.close()


# ---- diff ------------------------------------------------------------------------------


def test_diff_on_empty_ledger_is_all_adds(ledger: Ledger) -> None:
    lst = new_list()
    desired = hs(range(100))
    with ledger.diff(ACCOUNT, lst, iter(desired)) as plan:
        assert (plan.desired_count, plan.known_count) == (100, 0)
        assert (plan.add_count, plan.remove_count) == (100, 0)
        got = adds_of(plan)
        assert got == sorted(desired)
        assert removes_of(plan) == []
    assert ledger.count(ACCOUNT, lst) == 0  # nothing confirmed yet


def test_changed_set_gives_exact_adds_and_removes(ledger: Ledger) -> None:
    lst = new_list()
    a, b = set(hs(range(0, 60))), set(hs(range(40, 130)))
    sync(ledger, lst, list(a))
    assert ledger.count(ACCOUNT, lst) == 60
    with ledger.diff(ACCOUNT, lst, list(b)) as plan:
        assert plan.desired_count == 90
        assert plan.known_count == 60
        assert plan.add_count == len(b - a) == 70
        assert plan.remove_count == len(a - b) == 40
        assert adds_of(plan, 8) == sorted(b - a)
        assert removes_of(plan, 8) == sorted(a - b)
        for block in plan.adds(10):
            ledger.confirm_added(ACCOUNT, lst, block)
        for block in plan.removes(10):
            ledger.confirm_removed(ACCOUNT, lst, block)
    assert ledger.count(ACCOUNT, lst) == 90
    with ledger.diff(ACCOUNT, lst, list(b)) as plan:
        assert (plan.add_count, plan.remove_count, plan.known_count) == (0, 0, 90)


def test_iterating_while_confirming_visits_everything(ledger: Ledger) -> None:
    lst = new_list()
    sync(ledger, lst, hs(range(50)))
    with ledger.diff(ACCOUNT, lst, hs(range(25, 100))) as plan:
        seen_add, seen_rem = [], []
        for block in plan.adds(3):
            ledger.confirm_added(ACCOUNT, lst, block)
            seen_add += split(block)
        for block in plan.removes(4):
            ledger.confirm_removed(ACCOUNT, lst, block)
            seen_rem += split(block)
    assert sorted(seen_add) == sorted(hs(range(50, 100)))  # each once, in no particular order
    assert sorted(seen_rem) == sorted(hs(range(25)))
    assert ledger.count(ACCOUNT, lst) == 75


def test_duplicates_and_order_do_not_matter(ledger: Ledger) -> None:
    lst = new_list()
    desired = hs(range(30)) * 3
    desired.reverse()
    with ledger.diff(ACCOUNT, lst, (m for m in desired)) as plan:
        assert plan.desired_count == 30
        assert plan.add_count == 30
        assert adds_of(plan) == sorted(set(desired))


def test_empty_desired_removes_everything(ledger: Ledger) -> None:
    lst = new_list()
    sync(ledger, lst, hs(range(10)))
    with ledger.diff(ACCOUNT, lst, []) as plan:
        assert (plan.desired_count, plan.add_count, plan.remove_count) == (0, 0, 10)
        assert removes_of(plan, 100) == sorted(hs(range(10)))


def test_lists_and_accounts_are_separate(ledger: Ledger) -> None:
    l1, l2 = new_list(), new_list()
    sync(ledger, l1, hs(range(10)))
    assert ledger.count(ACCOUNT, l2) == 0
    assert ledger.count("other-account", l1) == 0
    with ledger.diff(ACCOUNT, l2, hs(range(5))) as plan:
        assert (plan.known_count, plan.add_count, plan.remove_count) == (0, 5, 0)


def test_two_plans_at_once_do_not_collide(ledger: Ledger) -> None:
    l1, l2 = new_list(), new_list()
    p1 = ledger.diff(ACCOUNT, l1, hs(range(10)))
    p2 = ledger.diff(ACCOUNT, l2, hs(range(5, 25)))
    assert adds_of(p1) == sorted(hs(range(10)))
    assert adds_of(p2) == sorted(hs(range(5, 25)))
    p1.close()
    assert adds_of(p2, 3) == sorted(hs(range(5, 25)))
    p2.close()
    p2.close()  # idempotent
    with pytest.raises(LedgerError):
        list(p1.adds(5))


def test_members_must_be_bytes(ledger: Ledger) -> None:
    with pytest.raises(TypeError, match="bytes"):
        ledger.diff(ACCOUNT, new_list(), ["ab" * 32])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="bytes"):
        ledger.confirm_added(ACCOUNT, new_list(), "ab" * 32)  # type: ignore[arg-type]
    # bytearray / memoryview are accepted
    odd: list = [bytearray(h(1)), memoryview(h(2))]
    with ledger.diff(ACCOUNT, new_list(), odd) as plan:
        assert adds_of(plan) == sorted([h(1), h(2)])


def test_members_travel_as_blobs_of_whole_digests(ledger: Ledger) -> None:
    lst = new_list()
    # Blobs of any size in, in any order; blobs of at most `chunk` digests out.
    desired = [blob(range(0, 10)), h(10), blob(range(11, 40)), blob(range(5, 15))]
    with ledger.diff(ACCOUNT, lst, iter(desired)) as plan:
        assert (plan.desired_count, plan.add_count) == (40, 40)
        blobs = list(plan.adds(16))
        assert [len(b) // 32 for b in blobs] == [16, 16, 8]
        assert [m for b in blobs for m in split(b)] == sorted(hs(range(40)))
        for b in blobs:
            ledger.confirm_added(ACCOUNT, lst, b)
    assert ledger.count(ACCOUNT, lst) == 40
    with pytest.raises(ValueError, match="32-byte"):
        ledger.confirm_added(ACCOUNT, lst, h(1)[:31])
    with pytest.raises(ValueError, match="32-byte"):
        ledger.diff(ACCOUNT, lst, [h(1) + b"x"])


def test_a_list_not_yet_created_knows_nobody(ledger: Ledger) -> None:
    lst = new_list()
    sync(ledger, lst, hs(range(10)))
    with ledger.diff(ACCOUNT, None, hs(range(5, 20))) as plan:
        assert (plan.desired_count, plan.known_count) == (15, 0)
        assert (plan.add_count, plan.remove_count) == (15, 0)
        assert adds_of(plan) == sorted(hs(range(5, 20)))
        assert removes_of(plan) == []


# ---- confirmations, crashes ------------------------------------------------------------


def test_confirm_is_idempotent(ledger: Ledger) -> None:
    lst = new_list()
    ledger.confirm_added(ACCOUNT, lst, blob(range(10)))
    ledger.confirm_added(ACCOUNT, lst, blob(range(10)))
    ledger.confirm_added(ACCOUNT, lst, blob(range(5, 15)))
    assert ledger.count(ACCOUNT, lst) == 15
    ledger.confirm_removed(ACCOUNT, lst, blob(range(3)))
    ledger.confirm_removed(ACCOUNT, lst, blob(range(3)))
    ledger.confirm_removed(ACCOUNT, lst, blob(range(100, 110)))  # never added
    ledger.confirm_added(ACCOUNT, lst, b"")
    ledger.confirm_removed(ACCOUNT, lst, b"")
    assert ledger.count(ACCOUNT, lst) == 12


def test_crash_between_chunks_converges(ledger: Ledger) -> None:
    lst = new_list()
    sync(ledger, lst, hs(range(100)))
    desired = hs(range(50, 200))  # 100 new, 50 gone

    # Run 1 "crashes" after confirming two chunks of adds and one chunk of removes.
    plan = ledger.diff(ACCOUNT, lst, desired)
    adds = plan.adds(20)
    confirmed = [next(adds) for _ in range(2)]
    for block in confirmed:
        ledger.confirm_added(ACCOUNT, lst, block)
    ledger.confirm_removed(ACCOUNT, lst, next(plan.removes(20)))
    del adds  # the run dies; its plan is never closed properly

    # Run 2 sees exactly the unfinished work.
    with ledger.diff(ACCOUNT, lst, desired) as plan2:
        assert plan2.known_count == 100 + 40 - 20
        assert plan2.add_count == 60
        assert plan2.remove_count == 30
        assert set(adds_of(plan2)) == set(hs(range(100, 200))) - set(split(b"".join(confirmed)))
    sync(ledger, lst, desired)
    plan.close()
    assert ledger.count(ACCOUNT, lst) == 150
    with ledger.diff(ACCOUNT, lst, desired) as plan3:
        assert (plan3.add_count, plan3.remove_count) == (0, 0)


def test_staging_leftovers_of_a_killed_run_are_tolerated(ledger: Ledger, url: str) -> None:
    lst = new_list()
    sync(ledger, lst, hs(range(20)))
    code = textwrap.dedent(
        f"""
        import hashlib, os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from target_pinterest_audiences.ledger import open_ledger
        led = open_ledger({url!r}, base_dir=Path.cwd())
        members = (hashlib.sha256(b"member-%d" % i).digest() for i in range(10, 40))
        plan = led.diff({ACCOUNT!r}, {lst!r}, members)
        first = next(plan.adds(3))
        led.confirm_added({ACCOUNT!r}, {lst!r}, first)
        print(plan.add_count, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == -signal.SIGKILL, res.stderr
    assert res.stdout.strip() == "20"
    # The next run sees the one confirmed chunk and completes the rest.
    with ledger.diff(ACCOUNT, lst, hs(range(10, 40))) as plan:
        assert (plan.known_count, plan.add_count, plan.remove_count) == (23, 17, 10)
    sync(ledger, lst, hs(range(10, 40)))
    assert ledger.count(ACCOUNT, lst) == 30
    # No staging table survives in the permanent schema.
    engine = sa.create_engine(url)
    try:
        names = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert not [n for n in names if n.startswith("tpa_stage")], names


# ---- locking ---------------------------------------------------------------------------


def hold_lock(url: str, lst: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from target_pinterest_audiences.ledger import open_ledger
        led = open_ledger({url!r}, base_dir=Path.cwd())
        with led.lock({ACCOUNT!r}, {lst!r}, wait_seconds=30):
            print("locked", flush=True)
            sys.stdin.read()
        print("released", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read() if proc.stderr else ""
    return proc


def test_lock_from_another_process_waits_then_raises_busy(ledger: Ledger, url: str) -> None:
    lst = new_list()
    proc = hold_lock(url, lst)
    try:
        t0 = time.monotonic()
        with pytest.raises(LedgerBusy) as err, ledger.lock(ACCOUNT, lst, wait_seconds=1.0):
            pass
        waited = time.monotonic() - t0
        assert 1.0 <= waited < 10
        msg = str(err.value)
        assert "another run of target-pinterest-audiences" in msg
        assert f"list {lst}" in msg and f"ad account {ACCOUNT}" in msg
        assert isinstance(err.value, LedgerError)

        # A different list is not blocked.
        t0 = time.monotonic()
        with ledger.lock(ACCOUNT, new_list(), wait_seconds=5):
            pass
        assert time.monotonic() - t0 < 3

        # Once the holder finishes normally, the lock is free.
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        with ledger.lock(ACCOUNT, lst, wait_seconds=10):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(ledger: Ledger, url: str) -> None:
    lst = new_list()
    proc = hold_lock(url, lst)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    with ledger.lock(ACCOUNT, lst, wait_seconds=20):
        pass
    assert time.monotonic() - t0 < 15


def test_lock_is_exclusive_between_ledgers_in_one_process(ledger: Ledger, url: str) -> None:
    lst = new_list()
    other = open_ledger(url, base_dir=Path.cwd())
    try:
        with ledger.lock(ACCOUNT, lst):
            if url.startswith("postgresql"):
                with pytest.raises(LedgerBusy), other.lock(ACCOUNT, lst, wait_seconds=0.3):
                    pass
        with (
            other.lock(ACCOUNT, lst, wait_seconds=1),
            pytest.raises(LedgerBusy),
            ledger.lock(ACCOUNT, lst, wait_seconds=0.3),
        ):
            pass
        with ledger.lock(ACCOUNT, lst, wait_seconds=1):
            pass
    finally:
        other.close()


def _insert_lock_row(path: Path, lst: str, host: str, pid: int, heartbeat: float) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO tpa_ledger_locks (ad_account_id, list_key, owner, host, pid, "
            "acquired_at, heartbeat_at) VALUES (?, ?, 'x', ?, ?, ?, ?)",
            (ACCOUNT, lst, host, pid, heartbeat - 5, heartbeat),
        )
    con.close()


def test_stale_sqlite_locks_are_taken_over(tmp_path: Path) -> None:
    import socket

    led = open_ledger(None, base_dir=tmp_path)
    try:
        led.count(ACCOUNT, "0")  # creates the schema
        db = tmp_path / ".target-pinterest-audiences" / "ledger.sqlite"
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        here = socket.gethostname()

        lst = new_list()  # dead pid on this host -> taken over at once
        _insert_lock_row(db, lst, here, dead.pid, time.time())
        with led.lock(ACCOUNT, lst, wait_seconds=0):
            pass

        lst = new_list()  # live holder on another host with a fresh heartbeat -> busy
        _insert_lock_row(db, lst, "elsewhere.example", os.getpid(), time.time())
        with (
            pytest.raises(LedgerBusy, match=r"elsewhere\.example"),
            led.lock(ACCOUNT, lst, wait_seconds=0.2),
        ):
            pass

        lst = new_list()  # another host, heartbeat too old -> taken over
        _insert_lock_row(db, lst, "elsewhere.example", 1, time.time() - 3600)
        with led.lock(ACCOUNT, lst, wait_seconds=0):
            pass
    finally:
        led.close()


def test_sqlite_lock_heartbeat_keeps_the_lock_fresh(tmp_path: Path) -> None:
    led = open_ledger(None, base_dir=tmp_path)
    led.heartbeat_seconds = 0.1
    try:
        lst = new_list()
        with led.lock(ACCOUNT, lst):
            db = tmp_path / ".target-pinterest-audiences" / "ledger.sqlite"
            con = sqlite3.connect(db)
            first = con.execute("SELECT heartbeat_at FROM tpa_ledger_locks").fetchone()[0]
            time.sleep(0.5)
            later = con.execute("SELECT heartbeat_at FROM tpa_ledger_locks").fetchone()[0]
            con.close()
            assert later > first
        con = sqlite3.connect(db)
        assert con.execute("SELECT count(*) FROM tpa_ledger_locks").fetchone()[0] == 0
        con.close()
    finally:
        led.close()


# ---- URLs and errors -------------------------------------------------------------------


def test_default_location_is_private(tmp_path: Path) -> None:
    led = open_ledger(None, base_dir=tmp_path)
    try:
        assert led.count(ACCOUNT, "1") == 0
    finally:
        led.close()
    d = tmp_path / ".target-pinterest-audiences"
    assert (d / "ledger.sqlite").exists()
    assert d.stat().st_mode & 0o777 == 0o700
    assert (d / "ledger.sqlite").stat().st_mode & 0o077 == 0


def test_default_directory_ignores_itself_in_git(tmp_path: Path) -> None:
    # A Meltano project is a git repository: neither the ledger nor the token file may land in it.
    led = open_ledger(None, base_dir=tmp_path)
    try:
        led.confirm_added(ACCOUNT, "1", h(1))
    finally:
        led.close()
    d = tmp_path / ".target-pinterest-audiences"
    assert (d / ".gitignore").read_text() == "*\n"
    repo = tmp_path
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert ".target-pinterest-audiences" not in status, status


def test_a_new_ledger_file_elsewhere_is_owner_only_too(tmp_path: Path) -> None:
    led = open_ledger(f"sqlite:///{tmp_path}/elsewhere/ledger.db", base_dir=tmp_path)
    try:
        led.confirm_added(ACCOUNT, "1", h(1))
    finally:
        led.close()
    path = tmp_path / "elsewhere" / "ledger.db"
    assert path.stat().st_mode & 0o077 == 0
    assert not (path.parent / ".gitignore").exists()  # not the target's directory: left alone


def test_relative_sqlite_url_is_relative_to_base_dir(tmp_path: Path) -> None:
    led = open_ledger("sqlite:///state/ledger.db", base_dir=tmp_path)
    try:
        led.confirm_added(ACCOUNT, "1", h(1))
    finally:
        led.close()
    assert (tmp_path / "state" / "ledger.db").exists()


def bad_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        return f"sqlite:///{blocker}/ledger.sqlite"
    return "postgresql+psycopg://tpa:hunter2@127.0.0.1:1/nope"


def test_bad_url_names_the_setting_and_hides_the_password(backend: str, tmp_path: Path) -> None:
    led = open_ledger(bad_url(backend, tmp_path), base_dir=tmp_path)
    with pytest.raises(LedgerError) as err:
        led.count(ACCOUNT, "1")
    msg = str(err.value)
    assert "ledger_url" in msg
    assert "hunter2" not in msg
    led.close()


@pytest.mark.parametrize(
    "raw",
    [
        "not a url at all",
        "mysql://root:hunter2@db/ledger",
        "postgresql+psycopg2://u:hunter2@h/db",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_unusable_urls_are_rejected_up_front(raw: str) -> None:
    with pytest.raises(LedgerError) as err:
        open_ledger(raw, base_dir=Path.cwd())
    assert "ledger_url" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_plain_postgresql_url_uses_psycopg(backend: str, url: str) -> None:
    if backend != "postgres":
        pytest.skip("postgres only")
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    led = open_ledger(plain, base_dir=Path.cwd())
    try:
        assert led.count(ACCOUNT, new_list()) == 0
    finally:
        led.close()


# ---- property --------------------------------------------------------------------------

# Members are 32-byte digests: a small pool (so that the two sets overlap), the extremes of
# the byte order, and arbitrary ones.
POOL = [*hs(range(12)), bytes(32), b"\xff" * 32, bytes(31) + b"\x01", b"\x01" + bytes(31)]
small_sets = st.sets(
    st.one_of(st.sampled_from(POOL), st.binary(min_size=32, max_size=32)), max_size=40
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    a=small_sets,
    b=small_sets,
    chunk=st.integers(min_value=1, max_value=9),
    as_the_reader_gives=st.booleans(),
)
def test_property_diff_is_set_difference(
    ledger: Ledger, a: set[bytes], b: set[bytes], chunk: int, as_the_reader_gives: bool
) -> None:
    lst = new_list()
    if a:
        ledger.confirm_added(ACCOUNT, lst, blob(sorted(a)))
    # Either the reader's partitioned member set, or any blobs with duplicates.
    desired = (
        Partitioned(MemberSet.of(b).partitions()) if as_the_reader_gives else list(b) + list(b)[:5]
    )
    with ledger.diff(ACCOUNT, lst, desired) as plan:
        assert plan.desired_count == len(b)
        assert plan.known_count == len(a)
        adds, removes = adds_of(plan, chunk), removes_of(plan, chunk)
        assert adds == sorted(b - a)
        assert removes == sorted(a - b)
        assert (plan.add_count, plan.remove_count) == (len(adds), len(removes))
        # Sorted desired members and the ledger's key order give sorted sides, which the
        # confirmations' speed depends on (not their correctness).
        as_sent = [m for page in plan.adds(chunk) for m in split(page)]
        assert as_sent == adds
        assert [m for page in plan.removes(chunk) for m in split(page)] == removes


def test_partitioned_members_out_of_order_are_refused(ledger: Ledger) -> None:
    low, high = bytes(32), b"\xff" * 32
    with pytest.raises(ValueError, match="one first byte per blob"):
        ledger.diff(ACCOUNT, new_list(), Partitioned([high, low]))
    with pytest.raises(ValueError, match="one first byte per blob"):
        ledger.diff(ACCOUNT, new_list(), Partitioned([low + high]))


def test_threads_of_one_process_exclude_each_other_and_many_locks_cost_one_session(
    ledger: Ledger, backend: str
) -> None:
    # Streams syncing side by side lock their lists from threads of one process: the same list
    # is held by one thread at a time (PostgreSQL's advisory locks are re-entrant within a
    # session, so the process must exclude its own threads), and holding many lists at once
    # does not take a database connection each.
    inside: list[str] = []
    most = [0]
    held = threading.Barrier(13)
    guard = threading.Lock()

    def same_list() -> None:
        with ledger.lock(ACCOUNT, "shared", wait_seconds=30):
            with guard:
                inside.append("x")
                most[0] = max(most[0], len(inside))
            time.sleep(0.02)
            with guard:
                inside.pop()

    def other_list(n: int) -> None:
        with ledger.lock(ACCOUNT, f"list-{n}", wait_seconds=30):
            held.wait(timeout=30)  # all twelve held at once
            held.wait(timeout=30)

    threads = [threading.Thread(target=same_list) for _ in range(6)]
    threads += [threading.Thread(target=other_list, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    held.wait(timeout=30)
    if backend == "postgres":
        engine = ledger._ensure()
        with engine.connect() as conn:
            sessions = conn.execute(
                sa.text(
                    "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar()
        assert sessions == 1
    held.wait(timeout=30)
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_creates_are_noted_pending_then_with_their_id_and_a_refusal_clears_them(
    ledger: Ledger,
) -> None:
    assert ledger.created(ACCOUNT, "list", "Holiday") is None
    ledger.note_creating(ACCOUNT, "list", "Holiday")
    noted = ledger.created(ACCOUNT, "list", "Holiday")
    assert noted is not None and noted.pending
    ledger.note_created(ACCOUNT, "list", "Holiday", "643")
    assert ledger.created(ACCOUNT, "list", "Holiday") == Created("643")
    assert ledger.created(ACCOUNT, "audience", "Holiday") is None  # kinds apart
    assert ledger.created("other", "list", "Holiday") is None  # accounts apart
    ledger.note_creating(ACCOUNT, "audience", "643")
    ledger.note_created(ACCOUNT, "audience", "643", None)  # refused: nothing pending
    assert ledger.created(ACCOUNT, "audience", "643") is None
    ledger.note_created(ACCOUNT, "list", "Holiday", None)  # a refusal never forgets a landed one
    assert ledger.created(ACCOUNT, "list", "Holiday") == Created("643")
