"""Issue 10.4 at the ledger level: the PostgreSQL ledger goes away in the middle of a run.

Each test has a server of its own (``tests/pg.py``), stopped or restarted between two
confirmations. The failing call raises a LedgerError that names the database (never its
password) and says that nothing is lost; the next run finds exactly what was confirmed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.ledger import LedgerError, open_ledger
from tests.conftest import AD_ACCOUNT, TargetRunner, audience_messages, emails, sha
from tests.ledger_support import ACCOUNT, adds_of, hs, new_list, split
from tests.pg import PostgresServer, PostgresUnavailable

pytestmark = pytest.mark.postgres

PASSWORD = "hunter2-Zq81"  # trust auth ignores it: it is here to be hidden from messages


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    if os.environ.get("TPA_PG_URL"):
        pytest.skip("needs a server of its own to stop (TPA_PG_URL is shared)")
    try:
        # fsync on: an immediate shutdown must not lose what was committed before it
        srv = PostgresServer(fsync=True)
        srv.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the PostgreSQL back end, but: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


def pg_ctl(srv: PostgresServer, action: str) -> None:
    assert srv.bindir is not None
    pg_ctl = str(srv.bindir / "pg_ctl")
    # restart reuses the options of the last start (port, socket directory)
    srv._run(pg_ctl, "-D", str(srv.data), "-l", str(srv.log), "-m", "immediate", "-w", action)


def url_of(srv: PostgresServer) -> str:
    return sa.make_url(srv.url).set(password=PASSWORD).render_as_string(hide_password=False)


def assert_says_nothing_is_lost(error: LedgerError, srv: PostgresServer) -> None:
    msg = str(error)
    assert f"127.0.0.1:{srv.port}/tpa_test" in msg, msg  # names the database ...
    assert PASSWORD not in msg, msg  # ... without its password
    assert "Nothing is lost" in msg and "next run" in msg, msg


def test_stopped_between_two_confirmations(server: PostgresServer, tmp_path: Path) -> None:
    url, lst = url_of(server), new_list()
    led = open_ledger(url, base_dir=tmp_path)
    try:
        with led.lock(ACCOUNT, lst, wait_seconds=5), led.diff(ACCOUNT, lst, hs(range(30))) as diff:
            first, second, _third = list(diff.adds(10))
            led.confirm_added(ACCOUNT, lst, first)  # Pinterest accepted it
            pg_ctl(server, "stop")
            with pytest.raises(LedgerError) as confirming:
                led.confirm_added(ACCOUNT, lst, second)  # Pinterest accepted it too
            assert_says_nothing_is_lost(confirming.value, server)
            # the diff's sides are local files: what to send is still known
            assert sum(len(page) for page in diff.adds(10)) == 30 * 32
            with pytest.raises(LedgerError) as counting:
                led.count(ACCOUNT, lst)
            assert_says_nothing_is_lost(counting.value, server)
        # leaving the lock and the diff with the database gone raises nothing
    finally:
        led.close()

    pg_ctl(server, "restart")
    with open_ledger(url, base_dir=tmp_path) as rerun, rerun.diff(ACCOUNT, lst, hs(range(30))) as d:
        # the first chunk was kept; the second is sent again
        assert (d.known_count, d.add_count, d.remove_count) == (10, 20, 0)


def test_restarted_between_two_confirmations(server: PostgresServer, tmp_path: Path) -> None:
    url, lst = url_of(server), new_list()
    desired = hs(range(5, 45))
    with open_ledger(url, base_dir=tmp_path) as led:
        led.confirm_added(ACCOUNT, lst, b"".join(hs(range(10))))
        with led.diff(ACCOUNT, lst, desired) as diff:
            pages = diff.adds(10)
            first = next(pages)
            led.confirm_added(ACCOUNT, lst, first)
            pg_ctl(server, "restart")
            # A confirmation after the restart gets a new session, and the diff (local files)
            # goes on: the run carries on past a restart between two confirmations.
            led.confirm_added(ACCOUNT, lst, b"".join(hs(range(40, 45))))
            second = next(pages)
            led.confirm_added(ACCOUNT, lst, second)

    confirmed = set(hs(range(10))) | set(split(first)) | set(split(second))
    confirmed |= set(hs(range(40, 45)))
    with (
        open_ledger(url, base_dir=tmp_path) as rerun,
        rerun.diff(ACCOUNT, lst, desired) as d,
    ):
        # every confirmation is there, before and after the restart
        assert d.known_count == len(confirmed) == rerun.count(ACCOUNT, lst)
        assert adds_of(d) == sorted(set(desired) - confirmed)
        assert d.remove_count == len(confirmed - set(desired)) == 5


# ---- end to end: a PostgreSQL restart under a real mirror run through the CLI ------------------


def test_a_ledger_stopped_mid_run_fails_the_stream_and_the_next_run_repairs_it(
    server: PostgresServer, target: TargetRunner, emulator: PinterestEmulator
) -> None:
    url = url_of(server)
    addresses = emails(120)
    messages = audience_messages("audience", "Outage", addresses)
    # Calls one at a time, slowly enough to stop the server between two confirmations.
    emulator.add_fault("latency", method="PATCH", seconds=0.3, times=None)
    config = {"sync_mode": "mirror", "ledger_url": url, "records_per_request": 10,
              "_calls_in_flight": 1, "_retry_base_seconds": 0.01}  # fmt: skip
    stopper = threading.Thread(target=_stop_after_patches, args=(server, emulator, 3))
    stopper.start()
    try:
        run = target.run(messages, **config)
    finally:
        stopper.join()
    assert run.returncode == 1 and run.states == []
    error = "\n".join(line for line in run.stderr.splitlines() if "ERROR" in line)
    assert "Stream 'audience' failed" in error
    assert f"127.0.0.1:{server.port}/tpa_test" in error and PASSWORD not in run.stderr
    assert "Nothing is lost" in error and "next run" in error
    assert "Traceback" not in run.stderr

    pg_ctl(server, "restart")  # restart reuses the port of the last start
    emulator.clear_faults()
    rerun = target.run(messages, **config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (listed,) = emulator.lists(AD_ACCOUNT)
    assert emulator.members(AD_ACCOUNT, listed["id"]) == {sha(a) for a in addresses}
    with open_ledger(url, base_dir=target.workdir) as ledger:
        assert ledger.count(AD_ACCOUNT, listed["id"]) == len(addresses)


def _stop_after_patches(server: PostgresServer, emulator: PinterestEmulator, patches: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [r for r in emulator.requests if r.method == "PATCH" and r.status == 200]
        if len(done) >= patches:
            break
        time.sleep(0.02)
    pg_ctl(server, "stop")
