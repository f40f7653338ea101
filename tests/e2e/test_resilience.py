"""Issue 3, "Resilience", end to end: the real CLI against the emulator with injected faults.

Points 1-5 and 7 of the issue (6, hostile input, is in test_hostile_input.py). Every fault the
emulator fires is tallied; the module prints "N faults injected, N survived, membership exact
in M/M cases" at the end (see ``fault_tally``).

Test-only knobs (hidden config keys, see runner.build_client): ``_retry_base_seconds`` (5xx /
connection backoff base), ``_rate_period_seconds`` (pacing window instead of 60 s) and
``_read_timeout_seconds``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.emulator.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
)
from tests.conftest import (
    AD_ACCOUNT,
    Run,
    TargetRunner,
    audience_messages,
    emails,
    sha,
    writes,
)

FAST = {"_retry_base_seconds": 0.02, "_lost_create_settle_seconds": 2.0}


# ---- the fault tally -------------------------------------------------------------------------


@dataclass
class Tally:
    injected: int = 0
    survived: int = 0
    fatal_by_design: int = 0
    cases: int = 0
    exact: int = 0

    def faults(self, emulator: PinterestEmulator, *, survived: bool) -> None:
        fired = len(emulator.faults_fired)
        self.injected += fired
        if survived:
            self.survived += fired
        else:
            self.fatal_by_design += fired

    def membership(self, exact: bool) -> None:
        self.cases += 1
        self.exact += int(exact)

    def summary(self) -> str:
        return (
            f"fault tally: {self.injected} faults injected, {self.survived} survived "
            f"({self.fatal_by_design} meant to be fatal: retry budget / 4xx / auth), "
            f"membership exact in {self.exact}/{self.cases} cases"
        )


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def fault_tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    yield TALLY
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = TALLY.summary()
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    else:  # pragma: no cover - without a terminal
        print(line)
    out = os.environ.get("RESILIENCE_TALLY_FILE")
    if out:
        Path(out).write_text(line + "\n")


def exact_members(
    emulator: PinterestEmulator, list_id: str | None, expected: set[str], *, survived: bool = True
) -> None:
    """Assert the list holds exactly ``expected``; tally the faults of this test."""
    assert list_id is not None
    actual = emulator.members(AD_ACCOUNT, list_id)
    TALLY.membership(actual == expected)
    TALLY.faults(emulator, survived=survived)
    assert actual == expected, (len(actual), len(expected))


def one_list_one_audience(emulator: PinterestEmulator) -> str:
    lists = emulator.lists(AD_ACCOUNT)
    audiences = emulator.audiences(AD_ACCOUNT)
    assert len(lists) == 1, lists
    assert len(audiences) == 1, audiences
    assert audiences[0]["rule"]["customer_list_id"] == lists[0]["id"]
    return str(lists[0]["id"])


def hashes(addresses: list[str]) -> set[str]:
    return {sha(a) for a in addresses}


def calls(emulator: PinterestEmulator, method: str, suffix: str) -> list[Any]:
    return [r for r in emulator.requests if r.method == method and r.path.endswith(suffix)]


def patches(emulator: PinterestEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "PATCH"]


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Traceback" not in run.stderr
    return run


def failed(run: Run) -> Run:
    assert run.returncode != 0, run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    assert run.states == [], "STATE claimed work Pinterest did not accept"
    return run


# ---- 1. Pacing -------------------------------------------------------------------------------


def test_a_burst_under_the_quota_is_not_slowed(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    addresses = emails(16)
    run = ok(target.run(audience_messages("audience", "Burst", addresses), records_per_request=2))
    assert len(writes(emulator)) == 9  # create + 7 PATCH + audience
    # the default 400/min leaves room: the pacer never made a call wait
    assert "9 write calls (0.0s waiting for the quota)" in run.stderr
    exact_members(emulator, run.entry()["customer_list_id"], hashes(addresses))


def test_writes_stay_under_the_quota_in_every_window(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    quota, period = 3, 1.5
    addresses = emails(16)
    run = ok(
        target.run(
            audience_messages("audience", "Paced", addresses),
            records_per_request=2,
            max_requests_per_minute=quota,
            _rate_period_seconds=period,
        )
    )
    times = sorted(r.time for r in writes(emulator))
    assert len(times) == 9
    for i in range(len(times) - quota):
        # quota+1 consecutive writes never fit in one window (small slack for socket jitter)
        assert times[i + quota] - times[i] >= period - 0.05, (i, times)
    assert times[-1] - times[0] >= 2 * period - 0.1
    exact_members(emulator, run.entry()["customer_list_id"], hashes(addresses))


def test_reads_are_paced_separately_from_writes(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # 2500 lists, 250 per page: finding "Target" takes 11 reads. Were reads counted against a
    # write quota of 2 per 3 s, they alone would take 15 s.
    for n in range(2500):
        emulator.seed_list(AD_ACCOUNT, f"Other {n}", set())
    addresses = emails(2)
    run = ok(
        target.run(
            audience_messages("audience", "Target", addresses),
            max_requests_per_minute=2,
            _rate_period_seconds=3,
        )
    )
    reads = [r for r in emulator.requests if r.method == "GET"]
    assert len(reads) >= 11
    first_write = writes(emulator)[0].time
    assert first_write - reads[0].time < 6.0  # were reads paced as writes: 15 s
    exact_members(emulator, run.entry()["customer_list_id"], hashes(addresses))


# ---- 2. Retries ------------------------------------------------------------------------------


def _seeded(emulator: PinterestEmulator, name: str = "Retry") -> str:
    return emulator.seed_list(AD_ACCOUNT, name, set())


def _gap_after_fault(emulator: PinterestEmulator) -> float:
    patched = patches(emulator)
    faulted = [i for i, r in enumerate(patched) if r.fault]
    assert faulted, "the fault did not fire"
    i = faulted[0]
    return patched[i + 1].time - patched[i].time


@pytest.mark.parametrize(
    "headers",
    [{"retry_after": 1}, {"ratelimit_reset": 1}],
    ids=["retry-after", "x-ratelimit-reset"],
)
def test_429_waits_as_the_headers_say(
    target: TargetRunner, emulator: PinterestEmulator, headers: dict[str, Any]
) -> None:
    list_id = _seeded(emulator)
    emulator.add_fault("status", method="PATCH", status=429, **headers)
    addresses = emails(6)
    ok(
        target.run(
            audience_messages("audience", "Retry", addresses),
            records_per_request=2,
            _calls_in_flight=1,
            **FAST,
        )
    )
    assert len(patches(emulator)) == 4  # 3 chunks + 1 retry
    assert _gap_after_fault(emulator) >= 0.95
    exact_members(emulator, list_id, hashes(addresses))


def test_429_without_headers_backs_off_with_jitter(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = _seeded(emulator)
    emulator.add_fault("status", method="PATCH", status=429, times=3)
    addresses = emails(4)
    run = ok(target.run(audience_messages("audience", "Retry", addresses), **FAST))
    assert len(patches(emulator)) == 4
    assert "(429)" in run.stderr  # the retry is logged with its reason
    exact_members(emulator, list_id, hashes(addresses))


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_every_kind_of_call_is_retried(
    target: TargetRunner, emulator: PinterestEmulator, status: int
) -> None:
    for method, path in [
        ("GET", r"/customer_lists$"),
        ("POST", r"/customer_lists$"),
        ("PATCH", r"/customer_lists/\d+$"),
        ("GET", r"/audiences$"),
        ("POST", r"/audiences$"),
    ]:
        emulator.add_fault("status", method=method, path=path, status=status, times=2)
    addresses = emails(6)
    run = ok(
        target.run(audience_messages("audience", "Flaky", addresses), records_per_request=2, **FAST)
    )
    assert len(emulator.faults_fired) == 10
    assert len(calls(emulator, "POST", "/customer_lists")) == 3  # 2 refused, 1 accepted
    assert len(calls(emulator, "POST", "/audiences")) == 3
    assert len(patches(emulator)) == 2 + 2
    list_id = one_list_one_audience(emulator)
    assert run.entry()["records_added"] == 6
    exact_members(emulator, list_id, hashes(addresses))


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
def test_dropped_connections_on_patch_are_retried(
    target: TargetRunner, emulator: PinterestEmulator, kind: str
) -> None:
    list_id = _seeded(emulator)
    emulator.add_fault(kind, method="PATCH", times=3)
    addresses = emails(8)
    run = ok(
        target.run(audience_messages("audience", "Retry", addresses), records_per_request=2, **FAST)
    )
    assert len(patches(emulator)) == 4 + 3
    # each member counted once, whatever was sent twice
    assert run.entry()["records_added"] == 8
    exact_members(emulator, list_id, hashes(addresses))


def test_every_request_has_a_read_timeout(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = _seeded(emulator)
    emulator.add_fault("latency", method="PATCH", seconds=3)
    addresses = emails(4)
    started = time.monotonic()
    ok(
        target.run(
            audience_messages("audience", "Retry", addresses), _read_timeout_seconds=0.5, **FAST
        )
    )
    assert time.monotonic() - started < 10
    assert len(patches(emulator)) >= 1
    exact_members(emulator, list_id, hashes(addresses))


def test_the_retry_budget_runs_out_with_a_message_naming_stream_call_and_pinterest(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = _seeded(emulator, "Budget")
    emulator.add_fault(
        "status", method="PATCH", status=503, times=None, code=7001, message="Backend overloaded"
    )
    run = failed(target.run(audience_messages("audience", "Budget", emails(3)), **FAST))
    assert len(patches(emulator)) == 8  # a bounded number of attempts
    error = run.stderr
    assert "Stream 'audience'" in error
    assert f"PATCH customer_lists/{list_id} (ADD, 3 records)" in error
    assert "HTTP 503" in error and "7001" in error and "Backend overloaded" in error
    exact_members(emulator, list_id, set(), survived=False)


@pytest.mark.parametrize(
    ("status", "hint"),
    [(400, "check its parameters"), (403, "ads:write"), (404, "segment_id")],
)
def test_a_4xx_retrying_cannot_fix_fails_at_once(
    target: TargetRunner, emulator: PinterestEmulator, status: int, hint: str
) -> None:
    list_id = _seeded(emulator, "Refused")
    emulator.add_fault(
        "status", method="PATCH", status=status, times=None, code=4242, message="Nope, not this"
    )
    run = failed(target.run(audience_messages("audience", "Refused", emails(3)), **FAST))
    assert len(patches(emulator)) == 1  # no retry
    assert "Stream 'audience'" in run.stderr
    assert f"HTTP {status}" in run.stderr and "4242" in run.stderr
    assert "Nope, not this" in run.stderr and hint in run.stderr
    exact_members(emulator, list_id, set(), survived=False)


# ---- 3. No double effect ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["drop_after", "drop_before"])
def test_a_lost_create_list_answer_never_makes_two_lists(
    target: TargetRunner, emulator: PinterestEmulator, kind: str
) -> None:
    emulator.add_fault(kind, method="POST", path=r"/customer_lists$")
    addresses = emails(5)
    run = ok(target.run(audience_messages("audience", "Once", addresses), **FAST))
    assert "looking it up" in run.stderr
    list_id = one_list_one_audience(emulator)
    assert run.entry()["customer_list_id"] == list_id
    assert run.entry()["records_added"] == 5
    assert len(calls(emulator, "POST", "/customer_lists")) == (1 if kind == "drop_after" else 2)
    exact_members(emulator, list_id, hashes(addresses))


def test_a_lost_create_audience_answer_never_makes_two_audiences(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("drop_after", method="POST", path=r"/audiences$", times=2)
    addresses = emails(3)
    run = ok(target.run(audience_messages("audience", "Once", addresses), **FAST))
    list_id = one_list_one_audience(emulator)
    assert run.entry()["audience_id"] == emulator.audiences(AD_ACCOUNT)[0]["id"]
    assert len(calls(emulator, "POST", "/audiences")) == 1
    exact_members(emulator, list_id, hashes(addresses))


def test_a_create_that_times_out_but_lands_later_never_makes_two_lists(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # Pinterest is slow: the create times out on our side and lands a moment later.
    emulator.add_fault("latency", method="POST", path=r"/customer_lists$", seconds=1.5)
    addresses = emails(5)
    run = ok(
        target.run(
            audience_messages("audience", "Slow", addresses), _read_timeout_seconds=0.5, **FAST
        )
    )
    time.sleep(1.6)  # let the slow create land, then look
    list_id = one_list_one_audience(emulator)
    assert run.entry()["customer_list_id"] == list_id
    exact_members(emulator, list_id, hashes(addresses))


def test_retried_adds_and_removes_count_each_member_once(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    keep, drop = emails(4), emails(4, start=100)
    list_id = emulator.seed_list(AD_ACCOUNT, "Counts", hashes(keep + drop))
    emulator.add_fault("drop_after", method="PATCH", times=4)
    new = emails(6, start=200)
    messages = (
        audience_messages("audience", "Counts", new)
        + audience_messages("audience", "Counts", drop, action="remove")[1:]
    )
    run = ok(target.run(messages, records_per_request=2, **FAST))
    assert run.entry()["records_added"] == 6
    assert run.entry()["records_removed"] == 4
    exact_members(emulator, list_id, hashes(keep + new))


# ---- 4. Tokens -------------------------------------------------------------------------------

REFRESH = {
    "access_token": None,
    "refresh_token": DEFAULT_REFRESH_TOKEN,
    "client_id": DEFAULT_CLIENT_ID,
    "client_secret": DEFAULT_CLIENT_SECRET,
}


def _token_file(target: TargetRunner) -> Path:
    return target.workdir / ".target-pinterest-audiences" / "refresh_token.json"


def test_refresh_only_config_gets_a_token_keeps_the_rotated_one_and_is_never_locked_out(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    addresses = emails(3)
    ok(target.run(audience_messages("audience", "Tokens", addresses), **REFRESH))
    first = emulator.requests[0]
    assert first.path.endswith("/oauth/token") and first.auth == "basic"
    path = _token_file(target)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())["refresh_token"]
    assert stored in emulator.valid_refresh_tokens()
    assert DEFAULT_REFRESH_TOKEN not in emulator.valid_refresh_tokens()  # rotated away
    # the same configuration runs again and again: the stored token is used
    more = emails(3, start=50)
    for _ in range(2):
        run = ok(target.run(audience_messages("audience", "Tokens", addresses + more), **REFRESH))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    list_id = one_list_one_audience(emulator)
    assert run.entry()["customer_list_id"] == list_id
    exact_members(emulator, list_id, hashes(addresses + more))


def test_a_401_refreshes_once_and_retries_the_same_call(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.set_token_lifetime(3)
    addresses = emails(16)
    run = ok(
        target.run(
            audience_messages("audience", "Expiring", addresses),
            records_per_request=2,
            _calls_in_flight=1,
            **{**REFRESH, "access_token": "test-access-token"},
            **FAST,
        )
    )
    log = emulator.requests
    refused = [i for i, r in enumerate(log) if r.status == 401]
    refreshes = [r for r in log if r.path.endswith("/oauth/token")]
    assert len(refused) >= 3
    assert len(refreshes) == len(refused)  # exactly one refresh per 401
    for i in refused:
        assert log[i + 1].path.endswith("/oauth/token") and log[i + 1].status == 200
        # the original call is retried, and succeeds
        assert (log[i + 2].method, log[i + 2].path) == (log[i].method, log[i].path)
        assert log[i + 2].status == 200
    assert run.entry()["records_added"] == 16
    exact_members(emulator, one_list_one_audience(emulator), hashes(addresses))


def test_expiring_refresh_token_warns_without_printing_it(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.configure(refresh_token_expires_in=5 * 86400)
    run = ok(target.run(audience_messages("audience", "Expiry", emails(2)), **REFRESH))
    assert "refresh token expires in 5" in run.stderr
    stored = json.loads(_token_file(target).read_text())["refresh_token"]
    for secret in (stored, DEFAULT_REFRESH_TOKEN, DEFAULT_CLIENT_SECRET):
        assert secret not in run.stderr + run.stdout


def test_refresh_endpoint_checks_basic_auth_and_a_wrong_secret_is_a_clear_error(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    wrong = "wrong-secret-Zq81xx"
    run = failed(
        target.run(
            audience_messages("audience", "Auth", emails(2)), **{**REFRESH, "client_secret": wrong}
        )
    )
    assert "client_secret" in run.stderr
    assert wrong not in run.stderr + run.stdout
    assert writes(emulator) == []


def test_a_401_with_no_way_to_refresh_names_the_setting(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    bogus = "pina_bogus-token-Zq81yy"
    run = failed(target.run(audience_messages("audience", "Auth", emails(2)), access_token=bogus))
    assert "access_token" in run.stderr
    assert "refresh_token" in run.stderr  # what else would make it work
    assert bogus not in run.stderr + run.stdout


# ---- 5. Crash safety -------------------------------------------------------------------------


class Crasher:
    """Runs the CLI in the background so that a test can SIGKILL it mid-run."""

    def __init__(self, target: TargetRunner) -> None:
        self.target = target

    def start(self, messages: list[dict[str, Any]], **config: Any) -> subprocess.Popen[bytes]:
        workdir = self.target.workdir
        (workdir / "config.json").write_text(json.dumps(self.target.config(**config)))
        (workdir / "input.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
        with (workdir / "input.jsonl").open("rb") as stdin:
            return subprocess.Popen(
                [sys.executable, "-m", "target_pinterest_audiences", "--config", "config.json"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
            )

    def kill_when(
        self, proc: subprocess.Popen[bytes], condition: Any, timeout: float = 30
    ) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while not condition():
            assert proc.poll() is None, "the run ended before the kill point"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.01)
        emulator = self.target.emulator
        before = len(emulator.spec_violations)
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # A request the kill cut off halfway arrives with a truncated body: that is the
        # kill's doing, not a spec violation by the target. Anything else still counts.
        time.sleep(0.2)
        truncated = "body is not valid JSON"
        with emulator._lock:
            later = emulator.spec_violations[before:]
            emulator.spec_violations[before:] = [v for v in later if truncated not in v]
        return out.decode(), err.decode()


def _accepted_patches(emulator: PinterestEmulator) -> int:
    return sum(1 for r in patches(emulator) if r.status == 200)


@pytest.mark.parametrize("after", [1, 4, 7])
def test_sigkill_after_some_accepted_writes_then_rerun_is_exact(
    target: TargetRunner, emulator: PinterestEmulator, after: int
) -> None:
    keep, drop = emails(3, start=500), emails(4, start=600)
    list_id = emulator.seed_list(AD_ACCOUNT, "Crash", hashes(keep + drop))
    new = emails(18)
    messages = (
        audience_messages("audience", "Crash", new)
        + audience_messages("audience", "Crash", drop, action="remove")[1:]
    )
    emulator.add_fault("latency", method="PATCH", seconds=0.25, times=None)
    crasher = Crasher(target)
    # Two calls in flight: the 11 calls take six rounds of 0.25 s, so the kill point (even
    # after 7) comes half a second before the end. With every call in flight at once they all
    # land together, and the run could finish (and write STATE) before the kill.
    proc = crasher.start(messages, records_per_request=2, _calls_in_flight=2, **FAST)
    out, _ = crasher.kill_when(proc, lambda: _accepted_patches(emulator) >= after)
    assert out.strip() == ""  # the killed run wrote no STATE
    emulator.clear_faults()
    run = ok(target.run(messages, records_per_request=2, **FAST))
    assert one_list_one_audience(emulator) == list_id
    assert run.entry()["customer_list_id"] == list_id
    exact_members(emulator, list_id, hashes(keep + new))


def test_sigkill_while_creating_the_list_then_rerun_makes_one_list(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("latency", method="POST", path=r"/customer_lists$", seconds=3)
    addresses = emails(6)
    messages = audience_messages("audience", "Creating", addresses)
    crasher = Crasher(target)
    proc = crasher.start(messages, records_per_request=2, **FAST)
    out, _ = crasher.kill_when(proc, lambda: bool(emulator.faults_fired))
    assert out.strip() == ""
    time.sleep(3.2)  # the create Pinterest was working on lands after the kill
    assert len(emulator.lists(AD_ACCOUNT)) == 1
    emulator.clear_faults()
    run = ok(target.run(messages, records_per_request=2, **FAST))
    list_id = one_list_one_audience(emulator)
    assert run.entry()["customer_list_id"] == list_id
    exact_members(emulator, list_id, hashes(addresses))


def test_sigkill_while_looking_up_a_list_whose_create_answer_was_lost(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("drop_after", method="POST", path=r"/customer_lists$")
    # the first GET is the initial lookup; the second is the lookup after the lost answer
    emulator.add_fault(
        "latency", method="GET", path=r"/customer_lists$", skip=1, seconds=5, times=None
    )
    addresses = emails(6)
    messages = audience_messages("audience", "Lost", addresses)
    crasher = Crasher(target)
    proc = crasher.start(messages, records_per_request=2, **FAST)
    out, _ = crasher.kill_when(
        proc, lambda: any(kind == "latency" for kind, _m, _p in emulator.faults_fired)
    )
    assert out.strip() == ""
    emulator.clear_faults()
    run = ok(target.run(messages, records_per_request=2, **FAST))
    list_id = one_list_one_audience(emulator)
    assert run.entry()["customer_list_id"] == list_id
    exact_members(emulator, list_id, hashes(addresses))


def test_sigkill_while_looking_up_an_audience_whose_create_answer_was_lost(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("drop_after", method="POST", path=r"/audiences$")
    emulator.add_fault("latency", method="GET", path=r"/audiences$", skip=1, seconds=5, times=None)
    addresses = emails(4)
    messages = audience_messages("audience", "LostAudience", addresses)
    crasher = Crasher(target)
    proc = crasher.start(messages, **FAST)
    out, _ = crasher.kill_when(
        proc, lambda: any(kind == "latency" for kind, _m, _p in emulator.faults_fired)
    )
    assert out.strip() == ""
    assert len(emulator.audiences(AD_ACCOUNT)) == 1  # Pinterest did create it
    emulator.clear_faults()
    run = ok(target.run(messages, **FAST))
    list_id = one_list_one_audience(emulator)
    assert run.entry()["audience_id"] == emulator.audiences(AD_ACCOUNT)[0]["id"]
    exact_members(emulator, list_id, hashes(addresses))


def test_sigkill_after_one_stream_finished_claims_nothing_and_rerun_reuses_everything(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    first, second = emails(4), emails(6, start=300)
    messages = audience_messages("first", "First", first) + audience_messages(
        "second", "Second", second
    )
    emulator.add_fault(
        "latency", method="PATCH", seconds=0.5, times=None
    )  # only the second stream (records_per_request=2 -> PATCHes) is slow
    crasher = Crasher(target)
    proc = crasher.start(messages, records_per_request=4, **FAST)
    # kill while the second stream's PATCH is in flight, once "first" is done (the streams sync
    # side by side: "first" has its list and audience while "second" still sends)
    out, _ = crasher.kill_when(
        proc, lambda: bool(emulator.faults_fired) and len(emulator.audiences(AD_ACCOUNT)) == 1
    )
    assert len(emulator.audiences(AD_ACCOUNT)) == 1  # "first" had its list and audience
    assert out.strip() == ""  # ... but STATE is written only once everything is accepted
    emulator.clear_faults()
    run = ok(target.run(messages, records_per_request=4, **FAST))
    lists = {item["name"]: str(item["id"]) for item in emulator.lists(AD_ACCOUNT)}
    assert sorted(lists) == ["First", "Second"]
    assert len(emulator.audiences(AD_ACCOUNT)) == 2
    assert run.entry("first")["customer_list_id"] == lists["First"]
    exact_members(emulator, lists["First"], hashes(first))
    exact_members(emulator, lists["Second"], hashes(second))


# ---- 7. Secrets ------------------------------------------------------------------------------


class IssuingEmulator(PinterestEmulator):
    """Remembers every token it issued, so a test can look for all of them in the output."""

    issued: list[str]

    def _op_oauth_token(self, body: Any, basic: Any) -> Any:
        outcome = super()._op_oauth_token(body, basic)
        if outcome.status == 200:
            self.issued.append(outcome.body["access_token"])
            self.issued.append(outcome.body["refresh_token"])
        return outcome


SECRET_ACCESS = "pina_SECRETaccessQQ11"
SECRET_REFRESH = "pinr_SECRETrefreshQQ22"
SECRET_CLIENT = "SECRETclientQQ33"


@pytest.fixture
def secret_emulator() -> Iterator[IssuingEmulator]:
    with IssuingEmulator(
        page_size=2,
        access_tokens={SECRET_ACCESS},
        refresh_tokens={SECRET_REFRESH},
        client_secret=SECRET_CLIENT,
    ) as server:
        server.issued = []
        yield server
        assert server.spec_violations == []


def _secret_config(emulator: PinterestEmulator) -> dict[str, Any]:
    return {
        "access_token": SECRET_ACCESS,
        "refresh_token": SECRET_REFRESH,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": SECRET_CLIENT,
    }


DEBUG_ENV = {"LOGLEVEL": "DEBUG", "TARGET_PINTEREST_AUDIENCES_LOGLEVEL": "DEBUG"}


def _assert_clean(text: str, secrets: list[str], raw: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, "a secret reached the output"
    lowered = text.lower()
    for value in raw:
        assert value.lower() not in lowered, "a raw identifier reached the output"


def test_no_secret_or_raw_identifier_in_any_output_at_debug_level(
    secret_emulator: IssuingEmulator, tmp_path: Path
) -> None:
    emulator = secret_emulator
    workdir = tmp_path / "work"
    workdir.mkdir()
    target = TargetRunner(emulator, workdir)
    emulator.set_token_lifetime(4)
    emulator.add_fault("status", method="PATCH", status=429, retry_after=0)
    emulator.add_fault("status", method="GET", status=500)
    emulator.add_fault("drop_after", method="PATCH", skip=2)
    emulator.add_fault("drop_after", method="POST", path=r"/customer_lists$")
    addresses = [*emails(10), "Ünïcødé.Person@exämple.com"]
    run = ok(
        target.run(
            audience_messages("audience", "Secrets", addresses),
            env=DEBUG_ENV,
            records_per_request=2,
            **_secret_config(emulator),
            **FAST,
        )
    )
    assert " DEBUG " in run.stderr or "DEBUG" in run.stderr  # debug logging really was on
    assert len(emulator.issued) >= 4  # refreshes happened, new tokens went around
    stored = json.loads(_token_file(target).read_text())["refresh_token"]
    secrets = [SECRET_ACCESS, SECRET_REFRESH, SECRET_CLIENT, stored, *emulator.issued]
    _assert_clean(run.stdout + run.stderr, secrets, addresses)
    exact_members(
        emulator, run.entry()["customer_list_id"], hashes([a.strip().lower() for a in addresses])
    )

    # a failing run at DEBUG: a refused token, then a refused refresh (wrong app secret)
    emulator.set_token_lifetime(None)
    wrong = {"access_token": "pina_revokedQQ44", "client_secret": "SECRETwrongQQ55"}
    bad = failed(
        target.run(
            audience_messages("audience", "Secrets", addresses),
            env=DEBUG_ENV,
            **{**_secret_config(emulator), **wrong},
            **FAST,
        )
    )
    assert "client_secret" in bad.stderr
    _assert_clean(bad.stdout + bad.stderr, [*secrets, *wrong.values()], addresses)

    # --about, with the secret configuration given
    config = workdir / "config.json"
    config.write_text(json.dumps(target.config(**_secret_config(emulator))))
    for fmt in ("json", "markdown", "text"):
        about = subprocess.run(
            [sys.executable, "-m", "target_pinterest_audiences", "--about",
             *(["--format", fmt] if fmt != "text" else []), "--config", str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, **DEBUG_ENV},
            check=False,
        )  # fmt: skip
        _assert_clean(about.stdout + about.stderr, secrets, addresses)


# ---- SIGTERM / SIGINT: stop without STATE -----------------------------------------------------


def _spawn(
    target: TargetRunner,
    env: dict[str, str] | None = None,
    stdin: Any = subprocess.PIPE,
    **config: Any,
) -> subprocess.Popen[bytes]:
    config_path = target.workdir / "config.json"
    config_path.write_text(json.dumps(target.config(**config)))
    return subprocess.Popen(
        [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config_path)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=target.workdir,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_sending_stops_without_state_and_a_rerun_completes(
    target: TargetRunner, emulator: PinterestEmulator, signum: int
) -> None:
    emulator.configure(latency=0.3)
    addresses = emails(400)
    messages = audience_messages("audience", "Signalled", addresses)
    source = target.workdir / "input.jsonl"
    source.write_text("".join(json.dumps(m) + "\n" for m in messages))
    with source.open("rb") as stdin:
        proc = _spawn(target, stdin=stdin, records_per_request=10, _calls_in_flight=2)
    deadline = time.monotonic() + 60
    while not [r for r in emulator.requests if r.method == "PATCH"]:
        assert time.monotonic() < deadline, "the target never started sending"
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err.decode()[-3000:]
    assert out == b""  # no STATE: the sync did not finish
    assert b"Stopped by signal" in err and b"no STATE was written" in err
    emulator.configure(latency=0)
    rerun = target.run(messages)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (listed,) = emulator.lists(AD_ACCOUNT)
    assert emulator.members(AD_ACCOUNT, listed["id"]) == {sha(a) for a in addresses}


def test_a_signal_while_reading_stops_without_state_and_leaves_no_member_file(
    target: TargetRunner, emulator: PinterestEmulator, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = _spawn(target, env={"TMPDIR": str(temp)}, _member_buffer_bytes=1)
    assert proc.stdin is not None
    lines = audience_messages("audience", "Half read", emails(50_000))  # several read blocks
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in lines).encode())
    proc.stdin.flush()  # the input stays open: the tap is still producing
    deadline = time.monotonic() + 60
    while not any(temp.iterdir()):  # members spilled: the target is reading
        assert time.monotonic() < deadline, "the target never spilled members"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-3000:]
    assert out == b""
    assert list(temp.iterdir()) == []
    assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
