"""The emulator checked by a tool nobody here wrote (issue 21): schemathesis runs its examples,
coverage, fuzzing and stateful phases against a freshly started emulator, from Pinterest's own
OpenAPI file, with a fixed seed and a time budget (``schemathesis.toml``, beside this file).

Any finding fails the test unless ``schemathesis_baseline.json`` lists it with its reason, or
the ``filter_failure`` hook of ``schemathesis_hooks.py`` shows from the call itself that it is
not the emulator's (two findings of the stateful phase, described there); the failure message
is schemathesis's own report (what failed, how to reproduce it with curl) and its summary,
which a passing run prints too (``pytest -s`` or ``-rP`` shows it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import schemathesis
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

from target_pinterest_audiences.emulator import PinterestEmulator, RecordedRequest
from target_pinterest_audiences.emulator.outcome import Outcome
from target_pinterest_audiences.emulator.spec import Spec
from tests.conftest import AD_ACCOUNT, REPO, TOKEN
from tests.unit.emulator import schemathesis_hooks as hooks

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"
BASELINE = HERE / "schemathesis_baseline.json"
SPEC = REPO / "target_pinterest_audiences" / "emulator" / "openapi-v5-audiences.json"
PHASES = ("examples", "coverage", "fuzzing", "stateful")
REFUSED_ACCOUNT = 403  # the emulator's default answer for an ad account the token may not use
TOO_SMALL, INVALID_RULE = 2613, 2625  # the emulator's codes (too_small_code, invalid_rule_code)
# The baseline accepts a 400 by operation and status only. Here, for those operations, the
# emulator's own reasons for the 400s it gave to requests that passed its spec check must be
# the ones the baseline gives.
BASELINED_400 = {
    "customer_lists/list": {"Invalid bookmark.", "Invalid bookmark for this request."},
    "audiences/list": {"Invalid bookmark.", "Invalid bookmark for this request."},
    "audiences/create": {
        TOO_SMALL,  # a list, or a lookalike's seed, with too few matched users
        INVALID_RULE,  # a lookalike's seeds, country or percentage
        "rule.customer_list_id is required for a CUSTOMER_LIST audience.",
    },
}


class RefusalsSeen(PinterestEmulator):
    """The emulator, noting the 400s it gives to requests that passed its spec check."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.refusals: set[tuple[str, object]] = set()

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[Outcome, RecordedRequest]:
        outcome, record = super().handle(method, target, headers, raw_body)
        body = outcome.body if isinstance(outcome.body, dict) else {}
        message = str(body.get("message", ""))
        if outcome.status == 400 and record.operation and f"({record.operation}): " not in message:
            code = body.get("code")
            self.refusals.add((record.operation, message if code == 1 else code))
        return outcome, record


def test_the_baseline_gives_a_reason_for_each_accepted_finding() -> None:
    entries = json.loads(BASELINE.read_text(encoding="utf-8"))["entries"]
    assert entries
    for entry in entries:
        assert len(entry.get("reason", "").strip()) > 20, entry


def test_the_hooks_drop_only_findings_the_call_itself_explains() -> None:
    """``schemathesis_hooks.filter_failure``, given the emulator's real answers to real
    schemathesis cases: it drops a refusal of a path the spec refuses, and an audience update
    refused for the customer list its rule names; it keeps the same findings otherwise."""
    schema = schemathesis.openapi.from_path(str(SPEC))
    lists = schema["/ad_accounts/{ad_account_id}/customer_lists"]
    a_list = schema["/ad_accounts/{ad_account_id}/customer_lists/{customer_list_id}"]
    audience = schema["/ad_accounts/{ad_account_id}/audiences/{audience_id}"]
    rejected = RejectedPositiveData(
        operation="x", message="x", status_code=400, allowed_statuses=["2xx"]
    )
    not_found = EnsureResourceAvailability(
        operation="x", message="x", created_with="x", not_available_with="x"
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    long_id = "9" * 30  # any length is schema-valid in an audience's rule, at most 18 in a path
    update = {"records": "a@example.com", "operation_type": "ADD"}

    def kept(failure: Any, operation: Any, **parts: Any) -> bool:
        parts.setdefault("media_type", "application/json" if "body" in parts else None)
        case = operation["PATCH" if "body" in parts else "GET"].Case(**parts)
        response = case.call(base_url=emulator.url, headers=auth)
        return bool(hooks.filter_failure(None, failure, case, response))

    with PinterestEmulator() as emulator:
        url = f"{emulator.url}/ad_accounts/{AD_ACCOUNT}"
        made = requests.post(f"{url}/customer_lists", json={"name": "l", **update}, headers=auth)
        list_id = made.json()["id"]
        rule = {"customer_list_id": list_id}
        made = requests.post(
            f"{url}/audiences",
            json={"name": "a", "audience_type": "CUSTOMER_LIST", "rule": rule},
            headers=auth,
        )
        audience_id = made.json()["id"]
        too_long = {"ad_account_id": AD_ACCOUNT, "customer_list_id": long_id}
        fine = {"ad_account_id": AD_ACCOUNT, "customer_list_id": list_id}
        # ST202: a path the spec refuses, refused for that alone: dropped
        assert not kept(rejected, a_list, path_parameters=too_long, body=update)
        assert not kept(rejected, a_list, path_parameters=too_long)
        # ... but kept when the emulator refuses anything else too, or a valid path
        assert kept(rejected, a_list, path_parameters=too_long, body={"records": "x"})
        assert kept(rejected, a_list, path_parameters=fine, body={"records": "x"})
        assert kept(
            rejected,
            lists,
            path_parameters={"ad_account_id": AD_ACCOUNT},
            query={"bookmark": "made-up"},
        )
        # ST302: an update whose rule names no list of the account: dropped ...
        missing_list = {"rule": {"customer_list_id": "123"}}
        path = {"ad_account_id": AD_ACCOUNT, "audience_id": audience_id}
        assert not kept(not_found, audience, path_parameters=path, body=missing_list)
        # ... but kept for an audience that is not there, or for another finding
        gone = {"ad_account_id": AD_ACCOUNT, "audience_id": "123"}
        assert kept(not_found, audience, path_parameters=gone, body=missing_list)
        assert kept(rejected, audience, path_parameters=path, body=missing_list)
        assert kept(not_found, audience, path_parameters=path)


def test_schemathesis_finds_nothing_but_the_baseline(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        str(SPEC),
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    # Quotas lifted: the generated load is not to be answered 429. Everything else as shipped.
    with RefusalsSeen(ads_write_per_minute=0, ads_read_per_minute=0) as emulator:
        run = subprocess.run(
            [*command, "--url", emulator.url],
            cwd=REPO,  # the paths in schemathesis.toml are the repository's
            capture_output=True,
            text=True,
            timeout=600,  # a guard against a hang, not a measure: the budget is max-time
            env={**os.environ, "COLUMNS": "100"},
            check=False,
        )
        served = list(emulator.requests)
        violations = list(emulator.spec_violations)
    output = run.stdout + run.stderr
    print(output)  # its phases and summary: operations, test cases, findings, time
    assert run.returncode == 0, output
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["baseline"]["new"] == 0, output
    assert {name: report["phases"][name]["skip_reason"] for name in PHASES} == dict.fromkeys(
        PHASES
    ), output
    assert report["operations"]["tested"] == report["operations"]["total"] == 9
    # The run reached what it is meant to check: every operation answered 2xx at least once
    # (so the credentials and the ad account were right), and made-up ad accounts were refused.
    succeeded = {r.operation for r in served if 200 <= r.status < 300}
    assert succeeded == {op.operation_id for op in Spec().operations}
    assert any(r.status == REFUSED_ACCOUNT for r in served)
    # No answer of the emulator's own departed from the spec (the client's departures are
    # what schemathesis sends on purpose).
    assert [v for v in violations if v.startswith("emulator bug")] == []
    unexplained = {
        (operation, why)
        for operation, why in emulator.refusals
        if operation in BASELINED_400 and why not in BASELINED_400[operation]
    }
    assert unexplained == set()
