"""Issue 10.2 at the ledger level: the newest refresh token kept in the ledger database.

Runs in fresh containers share one database: each takes the newest token there, and a
refresh is serialised through it so that the loser of a race uses the winner's token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from target_pinterest_audiences.ledger import (
    Ledger,
    LedgerBusy,
    LedgerError,
    StoredRefreshToken,
    open_ledger,
)
from tests.ledger_support import ROOT, fresh_database
from tests.pg import postgres_url  # noqa: F401  (session fixture)

APP = "1484362"  # a client_id
SECRET = "pinr.refresh-Zq81yy-secret"
CONFIGURED = "c0ffee" * 10


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared/ledger.sqlite"  # a file both "containers" mount
        return
    with fresh_database(str(request.getfixturevalue("postgres_url"))) as db:
        yield db


@pytest.fixture
def ledger(url: str, tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(url, base_dir=tmp_path) as led:
        yield led


def token(value: str, issued_at: float, expires_at: float | None = None) -> StoredRefreshToken:
    return StoredRefreshToken(
        refresh_token=value,
        expires_at=expires_at,
        issued_at=issued_at,
        configured_sha256=CONFIGURED,
    )


def test_the_newest_token_wins(ledger: Ledger) -> None:
    store = ledger.refresh_token_store(APP)
    assert store.load() is None
    store.save(token("first", 1000.0, expires_at=5000.5))
    assert store.load() == token("first", 1000.0, expires_at=5000.5)
    store.save(token("second", 2000.0))
    store.save(token("older", 1500.0))  # a slow run saving what it got earlier
    assert store.load() == token("second", 2000.0)
    other = ledger.refresh_token_store("another-app")
    assert other.load() is None
    other.save(token("theirs", 10.0))
    assert store.load() == token("second", 2000.0)
    assert other.load() == token("theirs", 10.0)


def test_the_token_never_shows(ledger: Ledger, url: str) -> None:
    store = ledger.refresh_token_store(APP)
    store.save(token(SECRET, 1000.0))
    loaded = store.load()
    assert loaded is not None and loaded.refresh_token == SECRET
    assert SECRET not in repr(loaded) and SECRET not in repr(store)
    assert SECRET not in store.describe() and "ledger" in store.describe()
    # A failing save: PostgreSQL would quote the failing row, token included, in its error.
    broken = StoredRefreshToken(SECRET, None, 3000.0, None)  # type: ignore[arg-type]
    with pytest.raises(LedgerError) as err:
        store.save(broken)
    assert SECRET not in str(err.value)
    assert "saving the refresh token" in str(err.value)
    assert "Nothing is lost" not in str(err.value)  # that is said of members, not of tokens


def test_exclusive_waits_a_bounded_time_and_names_the_database(url: str, tmp_path: Path) -> None:
    with (
        open_ledger(url, base_dir=tmp_path) as one,
        open_ledger(url, base_dir=tmp_path) as two,
    ):
        mine = one.refresh_token_store(APP)
        theirs = two.refresh_token_store(APP, wait_seconds=0.5)
        with mine.exclusive():
            started = time.monotonic()
            with pytest.raises(LedgerBusy) as err, theirs.exclusive():
                pass
            assert 0.5 <= time.monotonic() - started < 10
            # another app's refresh is not held up
            with two.refresh_token_store("another-app", wait_seconds=0.5).exclusive():
                pass
        with theirs.exclusive():  # free again
            pass
    msg = str(err.value)
    assert "refreshing the Pinterest token" in msg and one.describe() in msg, msg
    assert SECRET not in msg


# One "container": its own working directory, the shared database. It waits for "go", then
# refreshes unless someone refreshed since the seed token (issued at 1000).
RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from target_pinterest_audiences.ledger import StoredRefreshToken, open_ledger

    name = sys.argv[1]
    led = open_ledger({url!r}, base_dir=Path.cwd())
    store = led.refresh_token_store({app!r}, wait_seconds=30)
    store.load()  # connected and ready
    print("ready", flush=True)
    sys.stdin.readline()
    with store.exclusive():
        entered = time.time()
        current = store.load()
        if current.issued_at <= 1000:
            time.sleep(1.0)  # the refresh call to Pinterest
            configured = current.configured_sha256
            current = StoredRefreshToken("rotated-by-" + name, None, time.time(), configured)
            store.save(current)
            did = "refreshed"
        else:
            did = "used"
        left = time.time()
    led.close()
    print(json.dumps({{"did": did, "token": current.refresh_token, "in": entered, "out": left}}))
    """
)


def test_two_runs_refreshing_at_once_the_loser_uses_the_winners_token(
    ledger: Ledger, url: str, tmp_path: Path
) -> None:
    ledger.refresh_token_store(APP).save(token("seed", 1000.0))
    code = RUN.format(root=str(ROOT), url=url, app=APP)
    procs = []
    for name in ("a", "b"):
        workdir = tmp_path / f"container-{name}"
        workdir.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", code, name],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in procs:  # both go at the same moment
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = sorted((json.loads(out) for out, _err in outputs), key=lambda r: r["in"])
    winner, loser = results
    assert (winner["did"], loser["did"]) == ("refreshed", "used")
    assert loser["token"] == winner["token"] == ledger.refresh_token_store(APP).load().refresh_token
    assert winner["out"] <= loser["in"], "the two refreshes overlapped"
