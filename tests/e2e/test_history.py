"""Issue 19: the run history, through the real CLI against the emulator.

Every run adds one entry per stream to the ledger database, in both sync modes, for failed and
refused streams too (a dry run adds nothing); the report's JSON says what STATE said, run by
run; the history is the target's memory of which list a stream loaded last, whatever the tap
hands back; a ledger of the release before the history upgrades in place; and the history
holds no raw identifier and no secret.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.ledger.schema import SCHEMA_VERSION
from tests.conftest import (
    AD_ACCOUNT,
    TOKEN,
    Run,
    TargetRunner,
    audience_messages,
    emails,
    record_message,
    sha,
    writes,
)
from tests.history_support import report, report_json
from tests.ledger_releases import build_v2, schema_version

FAST = {"_retry_base_seconds": 0.01, "_lost_create_settle_seconds": 0.2}


def runs_of(target: TargetRunner, stream: str | None = None) -> list[dict[str, Any]]:
    """The history as the report's JSON has it (one stream's runs, or all runs)."""
    streams = report_json(target.workdir)["streams"]
    if stream is not None:
        return streams.get(stream, {}).get("runs", [])
    return [run for s in streams.values() for run in s["runs"]]


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr[-3000:]
    return run


# ---- 1. every run, every stream, both modes, failures too ----------------------------------------


def test_the_reports_json_says_what_state_said_run_by_run(target: TargetRunner) -> None:
    """Three runs of two streams (one mirror, one explicit): each run of each stream is in the
    history with every key of its STATE entry, oldest first."""
    states: list[dict[str, Any]] = []
    config = {"streams": {"mirrored": {"sync_mode": "mirror"}}}
    for n in range(3):
        messages = audience_messages("mirrored", "Mirrored", emails(10 + 5 * n, start=2 * n))
        messages += audience_messages("explicit", "Explicit", emails(4, start=100 + n))
        messages.append(record_message("explicit", segment_name="Explicit", email="not-an-email"))
        states.append(ok(target.run(messages, **config)).state["pinterest_audiences"])

    for stream, mode in (("mirrored", "mirror"), ("explicit", "explicit")):
        runs = runs_of(target, stream)
        assert len(runs) == 3
        for run, state in zip(runs, states, strict=True):
            entry = state[stream]
            assert {k: run[k] for k in entry} == entry, stream
            assert run["sync_mode"] == mode and run["outcome"] == "synced"
            assert run["message"] is None
            assert run["finished_at"].endswith("Z") and run["started_at"] <= run["finished_at"]
            # its own calls (the listing of the account is the run's, shared by its streams)
            assert run["rows_read"] >= entry["records_added"] and run["calls"] >= 1
        assert [r["finished_at"] for r in runs] == sorted(r["finished_at"] for r in runs)
    mirrored = runs_of(target, "mirrored")
    assert [r["members"] for r in mirrored] == [10, 15, 20]
    assert [r["records_removed"] for r in mirrored] == [0, 2, 2]
    assert runs_of(target, "explicit")[0]["invalid_by_reason"] == {"invalid_email": 1}
    assert "members" not in runs_of(target, "explicit")[0]  # as in its STATE entry


def test_a_failed_stream_is_in_the_history_with_its_message(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    """A stream that fails half-way (its list created, its next call refused) is recorded
    with the message the run printed; the stream beside it synced and says so."""
    messages = audience_messages("failing", "Failing", emails(6))
    messages += audience_messages("fine", "Fine", emails(3, start=50))
    # the first update is refused (a 400 is never retried): the failing stream's, after its
    # list was created with the first two members
    emulator.add_fault("status", method="PATCH", status=400, times=1)
    # one stream at a time (the larger first), so that the fault meets the failing stream
    run = target.run(messages, records_per_request=2, _streams_in_parallel=1, **FAST)
    assert run.returncode == 1 and run.states == []
    (failed,) = runs_of(target, "failing")
    assert failed["outcome"] == "failed"
    assert failed["message"].startswith("Stream 'failing' failed: ")
    for line in failed["message"].splitlines():  # what the run printed, word for word
        assert line in run.stderr
    # how far it got: the list it created (its audience never came)
    (created,) = [x for x in emulator.lists(AD_ACCOUNT) if x["name"] == "Failing"]
    assert failed["customer_list_id"] == created["id"] and failed["audience_id"] is None
    assert failed["segment_name"] == "Failing" and failed["rows_read"] == 6
    assert failed["calls"] >= 2  # the create, the refused update
    (fine,) = runs_of(target, "fine")
    assert fine["outcome"] == "synced" and fine["records_added"] == 3
    assert fine["message"] is None


def test_a_stream_that_failed_after_its_audience_names_both_ids(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    """Its list and audience synced, then Pinterest refused its lookalike (a country it does
    not offer): the history's row names the list and the audience the stream got to."""
    lookalike = {"country": "FR", "percentage": 2}
    run = target.run(
        audience_messages("abroad", "Abroad", emails(150)),
        streams={"abroad": {"lookalikes": [lookalike]}},
    )
    assert run.returncode == 1
    (failed,) = runs_of(target, "abroad")
    (created,) = emulator.lists(AD_ACCOUNT)
    (audience,) = emulator.audiences(AD_ACCOUNT)
    assert failed["outcome"] == "failed" and "code 2625" in failed["message"]
    assert failed["customer_list_id"] == created["id"]
    assert failed["audience_id"] == audience["id"]


def test_a_refused_stream_is_in_the_history_as_refused(target: TargetRunner) -> None:
    messages = audience_messages("strict", "Strict", emails(3))
    messages.append(record_message("strict", segment_name="Strict", email="broken@@example"))
    run = target.run(messages, on_invalid_record="fail")
    assert run.returncode == 1
    (refused,) = runs_of(target, "strict")
    assert refused["outcome"] == "refused" and refused["sync_mode"] == "explicit"
    assert "on_invalid_record=fail" in refused["message"]
    assert refused["message"].split(": ", 1)[0] in run.stderr
    assert refused["records_invalid"] == 1 and refused["invalid_by_reason"] == {"invalid_email": 1}
    assert refused["rows_read"] == 4 and refused["segment_name"] == "Strict"


def test_a_mirror_run_refused_by_the_removal_guard_is_recorded(target: TargetRunner) -> None:
    ok(target.run(audience_messages("guarded", "Guarded", emails(10)), sync_mode="mirror"))
    run = target.run(audience_messages("guarded", "Guarded", emails(2)), sync_mode="mirror")
    assert run.returncode == 1
    first, second = runs_of(target, "guarded")
    assert first["outcome"] == "synced" and second["outcome"] == "refused"
    assert "max_removal_fraction" in second["message"]


def test_a_dry_run_adds_nothing(target: TargetRunner) -> None:
    ok(target.run(audience_messages("audience", "Dry", emails(3))))
    ok(target.run(audience_messages("audience", "Dry", emails(5)), dry_run=True))
    assert len(runs_of(target)) == 1


def test_a_dry_run_in_a_new_directory_creates_no_ledger(target: TargetRunner) -> None:
    ok(target.run(audience_messages("audience", "Dry", emails(3)), dry_run=True))
    assert not (target.workdir / ".target-pinterest-audiences" / "ledger.sqlite").exists()


@pytest.mark.postgres
def test_the_history_is_kept_in_ledger_url_on_postgresql(
    target: TargetRunner, postgres_url: str
) -> None:
    from tests.ledger_support import fresh_database

    with fresh_database(postgres_url) as url:
        ok(target.run(audience_messages("audience", "On Postgres", emails(3)), ledger_url=url))
        config = target.workdir / "config.json"  # the run's own config, ledger_url in it
        data = report_json(target.workdir, "--config", str(config))
        (run,) = data["streams"]["audience"]["runs"]
        assert run["outcome"] == "synced" and run["records_added"] == 3
        assert not (target.workdir / ".target-pinterest-audiences" / "ledger.sqlite").exists()


def test_a_ledger_that_cannot_be_opened_is_named_once_and_nothing_is_sent(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    """The history's trouble is a warning; but explicit runs record the members they send in the
    ledger too (issue 20.1), so a stream that would send fails, before sending, naming it."""
    workdir = target.workdir / ".target-pinterest-audiences"
    workdir.mkdir()
    (workdir / "ledger.sqlite").write_text("this is not a database")
    run = target.run(audience_messages("audience", "Unrecorded", emails(3)))
    assert run.returncode == 1 and run.states == [] and "Traceback" not in run.stderr
    (warning,) = [line for line in run.stderr.splitlines() if "run history cannot be kept" in line]
    assert "WARNING" in warning and "ledger_url" in warning
    failed = [line for line in run.stderr.splitlines() if "Stream 'audience' failed" in line]
    assert failed and "ledger_url" in failed[0] and "not a database" in failed[0]
    assert writes(emulator) == []


# ---- 2. the target's own memory ------------------------------------------------------------------


def test_the_list_change_warning_needs_no_state_from_the_tap(target: TargetRunner) -> None:
    """Taps built on the Singer SDK drop the target's keys from the state they hand back: the
    history remembers which list the stream loaded last."""
    first = ok(target.run(audience_messages("audience", "Old Name", emails(5))))
    old_id = first.entry()["customer_list_id"]
    # the tap hands back a state of its own, without the target's entry
    messages = [{"type": "STATE", "value": {"bookmarks": {"audience": {"replication_key": 1}}}}]
    second = ok(target.run(messages + audience_messages("audience", "New Name", emails(5))))
    new_id = second.entry()["customer_list_id"]
    assert new_id != old_id
    (warning,) = [line for line in second.stderr.splitlines() if "previous run loaded" in line]
    assert "WARNING" in warning and old_id in warning and new_id in warning
    assert "'Old Name'" in warning and "'New Name'" in warning
    # said once: the next run loads the same list as the last one
    third = ok(target.run(audience_messages("audience", "New Name", emails(5))))
    assert "previous run loaded" not in third.stderr


def test_the_warning_reads_the_history_of_this_ad_account_only(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    ok(target.run(audience_messages("audience", "Account A", emails(2))))
    other = "549755885199"
    emulator.configure(ad_accounts=[AD_ACCOUNT, other])  # the token may use both
    run = ok(target.run(audience_messages("audience", "Account B", emails(2)), ad_account_id=other))
    assert "previous run loaded" not in run.stderr


# ---- an older ledger ---------------------------------------------------------------------------


def test_a_ledger_of_the_previous_release_upgrades_and_keeps_its_members(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    """A version-2 ledger (mirror mode's members of a list) written as the previous release
    wrote it: a mirror run finds every member there (it sends nothing), and the history has
    the run."""
    addresses = emails(12)
    list_id = emulator.seed_list(AD_ACCOUNT, "Kept", {sha(a) for a in addresses})
    ledger = target.workdir / ".target-pinterest-audiences" / "ledger.sqlite"
    ledger.parent.mkdir(mode=0o700)
    url = f"sqlite:///{ledger}"
    digests = [bytes.fromhex(sha(a)) for a in addresses]
    build_v2(url, {(AD_ACCOUNT, list_id): digests}, uploads={(AD_ACCOUNT, list_id): 12})
    emulator.requests.clear()

    run = ok(target.run(audience_messages("audience", "Kept", addresses), sync_mode="mirror"))

    # the members were all there: nothing to add or remove (the list gets its audience)
    assert [w for w in writes(emulator) if "/customer_lists" in w.path] == []
    entry = run.entry()
    assert entry["customer_list_id"] == list_id and entry["members"] == 12
    assert schema_version(url) == SCHEMA_VERSION
    (recorded,) = runs_of(target, "audience")
    assert recorded["outcome"] == "synced" and recorded["members"] == 12
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT count(*) FROM tpa_ledger_members").fetchone() == (12,)


# ---- 6. privacy --------------------------------------------------------------------------------

MARKER = "zqx7"


def test_the_history_and_the_report_hold_no_raw_identifier_and_no_secret(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    addresses = [f"{MARKER}.user{n}@secret-domain.example" for n in range(8)]
    devices = ["5f2b4c1e-9a7d-4e3b-8c6f-0d1e2a3b4c5d"]
    messages = audience_messages("synced", "Private", addresses)
    messages += audience_messages("devices", "Devices", devices, field="maid")
    strict = audience_messages("strict", "Strict", addresses[:2])
    strict.append(record_message("strict", segment_name="Strict", email=f"{MARKER}@@bad"))
    failing = audience_messages("failing", "Failing", addresses[2:])
    emulator.add_fault("status", method="PATCH", status=400, times=None)
    secret = "client-secret-zqx7-value"
    run = target.run(
        messages + strict + failing,
        on_invalid_record="fail",
        records_per_request=2,
        client_secret=secret,
        **FAST,
    )
    assert run.returncode == 1
    emulator.clear_faults()
    outcomes = {r["stream"]: r["outcome"] for r in runs_with_stream(target)}
    assert outcomes == {
        "synced": "failed",  # the fault hits its updates too
        "devices": "synced",
        "strict": "refused",
        "failing": "failed",
    }
    stored = b"".join(
        p.read_bytes()
        for p in (target.workdir / ".target-pinterest-audiences").rglob("*")
        if p.is_file()
    )
    reports = "".join(
        report(target.workdir, "--format", fmt).stdout for fmt in ("text", "json", "html")
    )
    for text in (stored.decode(errors="replace"), reports):
        assert MARKER not in text.lower() and "secret-domain" not in text
        assert devices[0] not in text.lower()
        assert TOKEN not in text and secret not in text


def runs_with_stream(target: TargetRunner) -> list[dict[str, Any]]:
    streams = report_json(target.workdir)["streams"]
    return [{"stream": name, **run} for name, s in streams.items() for run in s["runs"]]


# ---- the text report after three runs ----------------------------------------------------------


def test_the_text_report_after_three_runs(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    """Three runs of a mirror stream and an explicit one; in the third, Pinterest refuses the
    explicit stream's update. (Its output is the README's example.)"""
    lapsed_list = ""
    for n in range(3):
        messages = audience_messages("holiday_shoppers", "Holiday Shoppers", emails(40 + 10 * n))
        messages += audience_messages("lapsed", "Lapsed", emails(8, start=500 + n))
        if n == 1:
            messages.append(record_message("lapsed", segment_name="Lapsed", email="no-at-sign"))
        if n == 2:
            emulator.add_fault(
                "status", method="PATCH", path=f"/customer_lists/{lapsed_list}$", status=400,
                times=None,
            )  # fmt: skip
        run = target.run(messages, streams={"holiday_shoppers": {"sync_mode": "mirror"}}, **FAST)
        if n < 2:
            lapsed_list = ok(run).entry("lapsed")["customer_list_id"]
        else:
            assert run.returncode == 1
    emulator.clear_faults()
    proc = report(target.workdir)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "Run history: 2 stream(s), 6 run(s) in .target-pinterest-audiences/ledger.sqlite"
    )
    (holiday,) = [line for line in lines if line.startswith("holiday_shoppers ")]
    assert re.search(r" mirror +synced .* 60 +100\.0% +3 +this run$", holiday), holiday
    (lapsed,) = [line for line in lines if line.startswith("lapsed ")]
    assert re.search(r" explicit +failed .* 3 \(1 not synced\) +\d{4}-\d\d-\d\d", lapsed)
    assert lines.index("Latest runs that did not sync:") > lines.index(lapsed)
    assert any(line.startswith("  lapsed (failed): Stream 'lapsed' failed: ") for line in lines)
    data = json.loads(report(target.workdir, "--format", "json").stdout)
    assert [r["outcome"] for r in data["streams"]["lapsed"]["runs"]] == [
        "synced", "synced", "failed",
    ]  # fmt: skip
    assert [r["records_invalid"] for r in data["streams"]["lapsed"]["runs"]] == [0, 1, 0]
