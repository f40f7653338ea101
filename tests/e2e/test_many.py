"""Issue 17: hundreds of audiences in one run, through the CLI against the emulator with
Pinterest's quotas on (400 writes and 1,000 reads a minute, its defaults).

The account is read once, not per stream; streams sync side by side on bounded threads; faults,
kills and a used-up quota behave as they do for one stream; several ad accounts in one run.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, Run, TargetRunner, audience_messages, emails, sha

FAST = {"_retry_base_seconds": 0.01, "_lost_create_settle_seconds": 0.5}
OTHER_ACCOUNT = "549755885176"


def streams(count: int, members: int, *, prefix: str = "Seg") -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for n in range(count):
        messages += audience_messages(
            f"s{n}", f"{prefix} {n}", emails(members, start=n * members), action=None
        )
    return messages


def seed_account(emulator: PinterestEmulator, lists: int, account: str = AD_ACCOUNT) -> None:
    """An account that already holds ``lists`` lists, each with its audience."""
    for n in range(lists):
        list_id = emulator.seed_list(account, f"Old campaign {n}", [sha(f"old{n}@example.com")])
        emulator.seed_audience(account, f"Old campaign {n}", list_id)


def reads(emulator: PinterestEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "GET"]


def exact(emulator: PinterestEmulator, count: int, members: int, *, prefix: str = "Seg") -> None:
    """One list per stream named as it says, with exactly its members, and one audience each."""
    lists = [x for x in emulator.lists(AD_ACCOUNT) if x["name"].startswith(f"{prefix} ")]
    assert sorted(x["name"] for x in lists) == sorted(f"{prefix} {n}" for n in range(count))
    for item in lists:
        n = int(item["name"].split()[-1])
        expected = {sha(a) for a in emails(members, start=n * members)}
        assert emulator.members(AD_ACCOUNT, item["id"]) == expected, item["name"]
    ids = {item["id"] for item in lists}
    on_lists = [
        a["rule"]["customer_list_id"]
        for a in emulator.audiences(AD_ACCOUNT)
        if a["rule"].get("customer_list_id") in ids
    ]
    assert sorted(on_lists) == sorted(ids)  # one audience per list, never two


class Sampled:
    """Runs the CLI in the background and samples its threads and open files."""

    def __init__(self, target: TargetRunner) -> None:
        self.target = target
        self.threads = 0
        self.files = 0

    def run(self, messages: list[dict[str, Any]], **config: Any) -> Run:
        workdir = self.target.workdir
        (workdir / "config.json").write_text(json.dumps(self.target.config(**config)))
        (workdir / "input.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
        with (workdir / "input.jsonl").open("rb") as stdin:
            proc = subprocess.Popen(
                [sys.executable, "-m", "target_pinterest_audiences", "--config", "config.json"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
            )
            done = threading.Event()
            sampler = threading.Thread(target=self._sample, args=(proc.pid, done))
            sampler.start()
            try:
                out, err = proc.communicate(timeout=300)
            finally:
                done.set()
                sampler.join()
        stdout, stderr = out.decode(), err.decode()
        states = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        return Run(proc.returncode, stdout, stderr, workdir, states)

    def _sample(self, pid: int, done: threading.Event) -> None:
        while not done.is_set():
            try:
                self.threads = max(self.threads, len(os.listdir(f"/proc/{pid}/task")))
                self.files = max(self.files, len(os.listdir(f"/proc/{pid}/fd")))
            except OSError:
                pass
            time.sleep(0.02)


def test_150_streams_read_the_account_once_and_land_exactly(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    seed_account(emulator, 600)
    emulator.requests.clear()
    run = target.run(streams(150, 20), _progress_interval_seconds=0.5)
    assert run.returncode == 0, run.stderr[-3000:]
    exact(emulator, 150, 20)
    # 1.1 and 1.2: one read to check the credentials, one listing of the account at the start
    # (600 lists and 600 audiences: 3 + 3 pages of 250), one more for what Pinterest made of
    # it (750 + 750: 3 + 3 pages). Reading the account per stream would take 150 x 6.
    listing = [r for r in reads(emulator) if r.query.get("page_size") == "250"]
    assert len(listing) == 12, len(listing)
    assert len(reads(emulator)) == 13
    assert not [r for r in emulator.requests if r.status == 429]
    entries = run.state["pinterest_audiences"]
    assert len(entries) == 150
    assert all(e["list_status"] == "READY" and e["audience_size"] == 20 for e in entries.values())
    # 5: progress at a steady cadence while the streams sync, and a total line.
    assert re.search(r"Progress: \d+ of 150 streams done \(0 failed or refused\)", run.stderr)
    assert "Total: 150 stream(s)" in run.stderr and "300 write and 13 read calls" in run.stderr


def test_threads_and_open_files_do_not_grow_with_the_number_of_streams(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # Both runs have more streams than sync side by side: the most threads and files a run
    # holds is set by its settings (streams side by side, calls in flight, the ledger's
    # connections), not by how many streams it has.
    counts: dict[int, tuple[int, int]] = {}
    for n, prefix in ((20, "Few"), (100, "Many")):  # 3 writes a stream: 360, under the quota
        sampler = Sampled(target)
        run = sampler.run(streams(n, 30, prefix=prefix), records_per_request=15)
        assert run.returncode == 0, run.stderr[-3000:]
        exact(emulator, n, 30, prefix=prefix)
        counts[n] = (sampler.threads, sampler.files)
    (few_threads, few_files), (many_threads, many_files) = counts[20], counts[100]
    # 8 streams side by side (each with its ledger writer and lock heartbeats), 16 call
    # threads, a few helpers; files: the ledger's pooled connections (3 files each), sockets.
    # A thread, connection or file per stream would pass 100 here.
    assert few_threads <= 64 and few_files <= 96, counts
    assert many_threads <= 64 and many_files <= 96, counts


def test_two_ad_accounts_in_one_run(target: TargetRunner, emulator: PinterestEmulator) -> None:
    emulator.configure(ad_accounts=[AD_ACCOUNT, OTHER_ACCOUNT])  # the token may use both
    seed_account(emulator, 300, OTHER_ACCOUNT)
    emulator.requests.clear()
    messages = streams(3, 10) + audience_messages("uk", "UK shoppers", emails(7, start=900))
    config = {"streams": {"uk": {"ad_account_id": OTHER_ACCOUNT}}}
    run = target.run(messages, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    exact(emulator, 3, 10)
    [uk] = emulator.lists(OTHER_ACCOUNT)[-1:]
    assert uk["name"] == "UK shoppers"
    assert emulator.members(OTHER_ACCOUNT, uk["id"]) == {sha(a) for a in emails(7, start=900)}
    assert not [x for x in emulator.lists(AD_ACCOUNT) if x["name"] == "UK shoppers"]
    entries = run.state["pinterest_audiences"]
    assert entries["uk"]["ad_account_id"] == OTHER_ACCOUNT
    assert entries["uk"]["customer_list_id"] == uk["id"]
    assert {entries[f"s{n}"]["ad_account_id"] for n in range(3)} == {AD_ACCOUNT}
    # Each account checked once before the input, and listed once at the start.
    for account in (AD_ACCOUNT, OTHER_ACCOUNT):
        mine = [r for r in reads(emulator) if f"/ad_accounts/{account}/" in r.path]
        checks = [r for r in mine if r.query.get("page_size") == "1"]
        assert len(checks) == 1, account
    other_lists = [
        r
        for r in reads(emulator)
        if r.path.endswith(f"/ad_accounts/{OTHER_ACCOUNT}/customer_lists")
        and r.query.get("page_size") == "250"
    ]
    assert len(other_lists) == 2  # 301 lists: two pages, read once (the read-back: per object)


def test_many_streams_with_random_429s_5xx_and_dropped_connections_land_exactly(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    seed_account(emulator, 30)
    rng = random.Random(17)
    for _ in range(40):
        kind = rng.choice(["429", "500", "503", "drop_before", "drop_after"])
        method = rng.choice(["GET", "POST", "PATCH"])
        skip = rng.randrange(0, 60)
        if kind in ("drop_before", "drop_after"):
            emulator.add_fault(kind, method=method, skip=skip)
        else:
            extra = {"ratelimit_reset": 1} if kind == "429" else {}
            emulator.add_fault("status", method=method, skip=skip, status=int(kind), **extra)
    run = target.run(streams(40, 25), records_per_request=10, **FAST)
    assert run.returncode == 0, run.stderr[-3000:]
    fired = {kind for kind, _, _ in emulator.faults_fired}
    assert {"status", "drop_before", "drop_after"} <= fired
    exact(emulator, 40, 25)  # nothing created twice, no member missing or extra


def test_a_sigkill_mid_run_with_many_streams_then_a_rerun_is_exact(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    from tests.e2e.test_resilience import Crasher

    seed_account(emulator, 40)
    messages = streams(40, 30)
    emulator.add_fault("latency", method="PATCH", seconds=0.05, times=None)
    crasher = Crasher(target)
    proc = crasher.start(messages, records_per_request=10, **FAST)

    def half_written() -> bool:
        return len([r for r in emulator.requests if r.method == "PATCH"]) >= 30

    out, _ = crasher.kill_when(proc, half_written)
    assert out.strip() == ""  # no STATE from a killed run
    emulator.clear_faults()
    run = target.run(messages, records_per_request=10, **FAST)
    assert run.returncode == 0, run.stderr[-3000:]
    exact(emulator, 40, 30)


def test_a_used_up_quota_stops_every_stream_at_once(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.configure(daily_quota=20)
    run = target.run(streams(30, 20), records_per_request=10, **FAST)
    assert run.returncode == 1 and run.states == []
    text = run.stderr
    lists = {x["name"]: x["id"] for x in emulator.lists(AD_ACCOUNT)}
    synced = 0
    for n in range(30):  # each stream synced whole before the wall, or says why it did not
        if not re.search(rf"Stream 's{n}' (failed|was not synced): Pinterest's", text):
            members = {sha(a) for a in emails(20, start=n * 20)}
            assert emulator.members(AD_ACCOUNT, lists[f"Seg {n}"]) == members, n
            synced += 1
    assert synced < 10
    refused = [r for r in emulator.requests if r.status == 429]
    assert 1 <= len(refused) <= 16  # the calls in flight at most; none retried into the wall
    assert "; retry " not in text


def test_a_token_without_the_write_scope_stops_every_stream(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_access_token("read-only-token", scope="ads:read")
    run = target.run(streams(20, 5), access_token="read-only-token")
    assert run.returncode == 1 and run.states == []
    assert run.stderr.count("ads:write") >= 1
    for n in range(20):
        assert re.search(rf"Stream 's{n}' (failed|was not synced)", run.stderr), n
    assert len([r for r in emulator.requests if r.status == 401]) <= 16


@pytest.mark.parametrize("workers", [1, 8])
def test_a_stream_of_many_calls_does_not_hold_the_small_ones_behind_it(
    target: TargetRunner, emulator: PinterestEmulator, workers: int, tmp_path: Path
) -> None:
    # One stream of 60 calls and 20 streams of one call each, with 20 ms a call: side by side
    # the small streams' creates are interleaved with the large stream's updates.
    emulator.configure(latency=0.02)
    messages = audience_messages("big", "Big", emails(600, start=10_000), action=None)
    messages += streams(20, 5, prefix="Small")
    run = target.run(messages, records_per_request=10, _streams_in_parallel=workers)
    assert run.returncode == 0, run.stderr[-3000:]
    order = [r for r in emulator.requests if r.method in ("POST", "PATCH")]
    small = [
        i
        for i, r in enumerate(order)
        if r.path.endswith("/customer_lists") and r.body["name"].startswith("Small")
    ]
    big_updates = [i for i, r in enumerate(order) if "/customer_lists/" in r.path]
    if workers == 1:  # one at a time: the large stream first, all the others after it
        assert min(small) > max(big_updates)
    else:  # side by side: the small streams go between the large one's updates, which go on
        assert min(small) < max(big_updates)  # the small ones are not held behind it
        assert min(big_updates) < max(small)  # and it is not starved by them


def test_two_runs_creating_one_new_list_at_once_make_one_list(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # The second run reads the account while the first one's create is on its way (slow): its
    # index has no such list. It waits for the first run's lock on the name, then learns from
    # the ledger that the list was created meanwhile (one read by id, not a listing).
    from tests.e2e.test_resilience import Crasher

    seed_account(emulator, 300)  # a listing would take 2 + 2 pages
    emulator.add_fault("latency", method="POST", path=r"/customer_lists$", seconds=4)
    first = Crasher(target).start(audience_messages("a", "Shared", emails(5)), **FAST)
    deadline = time.monotonic() + 30
    while not emulator.faults_fired:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second_dir = target.workdir / "second"
    second_dir.mkdir()
    second = TargetRunner(emulator, second_dir)
    (second_dir / ".target-pinterest-audiences").symlink_to(
        target.workdir / ".target-pinterest-audiences"
    )  # the same ledger, as two runs in one Meltano project share it
    messages = audience_messages("a", "Shared", emails(5, start=100))
    before = len(emulator.requests)
    run = second.run(messages, _ledger_lock_wait_seconds=60, **FAST)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err.decode()[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]
    [shared] = [x for x in emulator.lists(AD_ACCOUNT) if x["name"] == "Shared"]  # one, not two
    members = {sha(a) for a in emails(5) + emails(5, start=100)}
    assert emulator.members(AD_ACCOUNT, shared["id"]) == members
    later = emulator.requests[before:]
    gets = [r for r in later if r.method == "GET" and r.path.endswith(f"/{shared['id']}")]
    assert gets  # learnt by id
    listings = [r for r in later if r.query.get("page_size") == "250"]
    assert len(listings) <= 4 + 4  # its own first listing, and the read-back at most
