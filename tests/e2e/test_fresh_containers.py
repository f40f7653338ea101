"""Issue 10.2-10.3: runs in fresh containers that share one ledger database, through the CLI.

Pinterest rotates the refresh token at every refresh and the emulator, like it, invalidates
the previous one. Two runs in two working directories (two containers) refresh at the same
moment, again and again (access tokens expire every few calls); a third run in a third,
empty working directory still has only the refresh token first configured. With `ledger_url`
set, every run takes the newest token from the database and refreshes under its lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, audience_messages, emails, sha

CLIENT_ID = f"containers-{uuid.uuid4().hex[:8]}"  # its own app: no token of another test
CLIENT_SECRET = "containers-secret"
FIRST_REFRESH_TOKEN = "containers-refresh-0"


@pytest.fixture
def rotating() -> Iterator[PinterestEmulator]:
    with PinterestEmulator(
        page_size=2,
        matching_delay=0,
        min_matched_users=0,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        access_tokens=set(),  # no access token at all: every run starts with a refresh
        refresh_tokens={FIRST_REFRESH_TOKEN},
        token_lifetime=3,  # access tokens expire every three calls: refreshes mid-run
    ) as server:
        yield server
        assert server.spec_violations == [], server.spec_violations


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        shared = tmp_path / "shared-volume"
        shared.mkdir()
        yield f"sqlite:///{shared / 'ledger.sqlite'}"
        return
    base = str(request.getfixturevalue("postgres_url"))
    dbname = f"tpa_containers_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{dbname}"')
    try:
        yield sa.make_url(base).set(database=dbname).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.dispose()


def container(
    workdir: Path, emulator: PinterestEmulator, ledger_url: str, stream: str, n: int
) -> subprocess.Popen[bytes]:
    """One run in a fresh working directory, started now; its input written at once."""
    workdir.mkdir()
    config: dict[str, Any] = {
        "ad_account_id": AD_ACCOUNT,
        "api_url": emulator.url,
        "refresh_token": FIRST_REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "ledger_url": ledger_url,
        "records_per_request": 5,
        "_calls_in_flight": 2,
        "_retry_base_seconds": 0.01,
    }
    (workdir / "config.json").write_text(json.dumps(config))
    lines = "".join(json.dumps(m) + "\n" for m in audience_messages(stream, stream, emails(n)))
    (workdir / "input.jsonl").write_text(lines)
    with (workdir / "input.jsonl").open("rb") as source:
        return subprocess.Popen(
            [sys.executable, "-m", "target_pinterest_audiences", "--config", "config.json"],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=dict(os.environ),
        )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


def test_two_containers_refreshing_at_once_and_a_third_one_later_all_succeed(
    rotating: PinterestEmulator, shared_ledger: str, tmp_path: Path
) -> None:
    start = threading.Barrier(2)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def launch(name: str) -> None:
        start.wait()
        procs[name] = container(tmp_path / name, rotating, shared_ledger, name, 40)

    threads = [threading.Thread(target=launch, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = {name: finish(proc) for name, proc in procs.items()}
    for name, (code, out, err) in results.items():
        assert code == 0, f"{name}:\n{err[-4000:]}"
        assert json.loads(out.splitlines()[-1])["pinterest_audiences"][name]
    refreshes = [r for r in rotating.requests if r.path.endswith("/oauth/token")]
    assert len(refreshes) >= 4  # both runs refreshed, at start and mid-run
    assert all(r.status == 200 for r in refreshes)  # nobody used a rotated-out token
    print(f"two containers at once: exit codes {[code for code, _, _ in results.values()]}, "
          f"{len(refreshes)} refresh calls, all answered 200")  # fmt: skip

    # A third container, days later: an empty working directory and the first token only.
    code, out, err = finish(container(tmp_path / "three", rotating, shared_ledger, "three", 10))
    assert code == 0, err[-4000:]
    results["three"] = (code, out, err)
    lists = {x["name"]: x["id"] for x in rotating.lists(AD_ACCOUNT)}
    for name, n in (("one", 40), ("two", 40), ("three", 10)):
        assert rotating.members(AD_ACCOUNT, lists[name]) == {sha(a) for a in emails(n)}
    # 10.3: the private directory never lands in the user's repository
    for name in ("one", "two", "three"):
        private = tmp_path / name / ".target-pinterest-audiences"
        assert (private / ".gitignore").read_text() == "*\n"
        assert FIRST_REFRESH_TOKEN not in "".join(results[name][1:])  # no secret in any output


def test_without_a_shared_ledger_a_fresh_container_has_only_a_rotated_out_token(
    rotating: PinterestEmulator, tmp_path: Path
) -> None:
    # Why the database matters: the first run rotates the configured token away.
    first = container(tmp_path / "a", rotating, "", "a", 5)
    code, _, err = finish(first)
    assert code == 0, err[-3000:]
    code, _, err = finish(container(tmp_path / "b", rotating, "", "b", 5))
    assert code == 1
    assert "refresh_token" in err and "Traceback" not in err
