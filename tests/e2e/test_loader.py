"""End to end through the real CLI against the emulator: the loader's numbered promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import (
    AD_ACCOUNT,
    TOKEN,
    TargetRunner,
    audience_messages,
    emails,
    record_message,
    schema_message,
    sha,
    writes,
)


def members_of(emulator: PinterestEmulator, list_id: str) -> set[str]:
    return set(emulator.members(AD_ACCOUNT, list_id))


# 1. Package and CLI -------------------------------------------------------------------------


def test_about_documents_every_setting_and_marks_secrets() -> None:
    markdown = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences", "--about", "--format", "markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    about = json.loads(
        subprocess.run(
            [sys.executable, "-m", "target_pinterest_audiences", "--about", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    settings = about["settings"]["properties"]
    contract = [
        "ad_account_id", "access_token", "refresh_token", "client_id", "client_secret", "api_url",
        "sync_mode", "on_invalid_record", "records_per_request", "max_requests_per_minute",
        "list_type", "dry_run", "max_removal_fraction", "ledger_url",
    ]  # fmt: skip
    for name in contract:
        assert name in settings, name
        assert settings[name].get("description"), name
        assert f"| {name}" in markdown, name
    for secret in ("access_token", "refresh_token", "client_secret"):
        assert settings[secret].get("secret") is True
    assert "client_id" not in [k for k, v in settings.items() if v.get("secret")]
    assert about["settings"]["required"] == ["ad_account_id"]

    # 20.6: plain --about says what each setting means too (the SDK's text lists names only)
    plain = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences", "--about"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(plain.split())
    for name, setting in settings.items():
        assert f"- {name}" in plain, name
        if setting.get("description"):
            assert " ".join(setting["description"].split()) in flat, name
    assert "- ad_account_id (required): Ad account ID" in plain
    assert "- client_secret (secret): Client secret" in plain
    assert "Default: https://api.pinterest.com/v5" in plain


# 2 and 6. Identifiers, members, dedup, last row wins -----------------------------------------


def test_identifiers_are_normalized_hashed_and_sent_once(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    maid = "38400000-8cf0-11bd-b23e-10b96e40000d"
    prehashed = sha("prehashed@example.com")
    messages = [
        schema_message(),
        record_message(segment_name="Shoppers", email="  Alice@Example.COM ", action="add"),
        record_message(segment_name="Shoppers", email="alice@example.com", action="ADD"),
        record_message(segment_name="Shoppers", idfa=idfa, maid=maid, action="Add"),
        record_message(segment_name="Shoppers", email_sha256=prehashed.upper(), action="add"),
        record_message(segment_name="Shoppers", email="bob@example.com", action="add"),
        record_message(segment_name="Shoppers", email="bob@example.com", action="remove"),
        record_message(segment_name="Shoppers", email="carol@example.com", action="remove"),
        record_message(segment_name="Shoppers", email="carol@example.com", action="add"),
    ]
    run = target.run(messages)
    assert run.returncode == 0, run.stderr
    entry = run.entry()
    expected = {
        sha("alice@example.com"),
        sha(idfa.lower()),
        sha(maid),
        prehashed,
        sha("carol@example.com"),
    }
    assert members_of(emulator, entry["customer_list_id"]) == expected
    assert entry["records_added"] == 5
    assert entry["records_removed"] == 1  # bob: added then removed, last row wins
    assert entry["list_type"] == "EMAIL"  # a mix of kinds
    patched = [r for r in writes(emulator) if r.method == "PATCH"]
    sent = [h for r in patched for h in r.body["records"].split(",")]
    created = [r for r in writes(emulator) if r.path.endswith("/customer_lists")]
    sent += [h for r in created for h in r.body["records"].split(",")]
    assert sorted(sent) == sorted(expected | {sha("bob@example.com")})  # each member once


def test_members_go_out_in_calls_of_at_most_records_per_request(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    addresses = emails(23)
    run = target.run(audience_messages("audience", "Chunked", addresses), records_per_request=5)
    assert run.returncode == 0, run.stderr
    calls = writes(emulator)
    sizes = [len(r.body["records"].split(",")) for r in calls if "records" in (r.body or {})]
    assert sizes and max(sizes) <= 5 and sum(sizes) == 23
    assert members_of(emulator, run.entry()["customer_list_id"]) == {sha(a) for a in addresses}


def test_list_type_follows_the_identifiers_or_the_setting(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    maids = ["38400000-8cf0-11bd-b23e-10b96e40000d", "38400000-8cf0-11bd-b23e-10b96e40000e"]
    run = target.run(audience_messages("audience", "Devices", maids, field="maid"))
    assert run.returncode == 0, run.stderr
    assert run.entry()["list_type"] == "MAID"
    created = [r for r in writes(emulator) if r.path.endswith("/customer_lists")]
    assert created[-1].body["list_type"] == "MAID"
    run = target.run(audience_messages("audience", "Forced", emails(2)), list_type="IDFA")
    assert run.returncode == 0, run.stderr
    created = [r for r in writes(emulator) if r.path.endswith("/customer_lists")]
    assert created[-1].body["list_type"] == "IDFA"


# 3. Invalid rows ----------------------------------------------------------------------------


def _mixed_rows() -> list[dict]:
    return [
        schema_message(),
        record_message(segment_name="Mixed", email="good1@example.com", action="add"),
        record_message(segment_name="Mixed", email="not-an-email", action="add"),
        record_message(segment_name="Mixed", email="good2@example.com", action="delete"),
        record_message(segment_name="Mixed", action="add"),
        record_message(segment_name="Mixed", email_sha256="raw@example.com", action="add"),
        record_message(segment_name="Mixed", idfa="nope", action="add"),
        record_message(segment_name="Mixed", email="good3@example.com", action="add"),
    ]


def test_invalid_rows_are_skipped_and_counted_by_reason(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    run = target.run(_mixed_rows())
    assert run.returncode == 0, run.stderr
    entry = run.entry()
    assert members_of(emulator, entry["customer_list_id"]) == {
        sha("good1@example.com"),
        sha("good3@example.com"),
    }
    assert entry["records_invalid"] == 5
    assert entry["invalid_by_reason"] == {
        "invalid_action": 1,
        "invalid_email": 1,
        "invalid_email_sha256": 1,
        "invalid_idfa": 1,
        "missing_identifier": 1,
    }
    assert "invalid_email: 1" in run.stderr or "invalid_email=1" in run.stderr
    for raw in ("not-an-email", "raw@example.com", "good1@example.com"):
        assert raw not in run.stderr and raw not in run.stdout


def test_invalid_rows_fail_the_stream_when_asked(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    run = target.run(_mixed_rows(), on_invalid_record="fail")
    assert run.returncode != 0
    assert writes(emulator) == []
    assert emulator.lists(AD_ACCOUNT) == []
    assert "stream 'audience'" in run.stderr
    assert "row 2" in run.stderr and "invalid_email" in run.stderr
    assert "Traceback" not in run.stderr
    assert "not-an-email" not in run.stderr
    assert run.states == []


# 4. One list per stream -----------------------------------------------------------------------


def test_a_stream_naming_two_lists_sends_nothing_even_late(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = audience_messages("audience", "First List", emails(5000))
    messages.append(record_message(segment_name="Second List", email="late@example.com"))
    messages += audience_messages("audience", "First List", emails(10, start=6000))[1:]
    run = target.run(messages)
    assert run.returncode != 0
    assert writes(emulator) == []
    assert "'First List'" in run.stderr and "'Second List'" in run.stderr
    assert "'audience'" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.states == []


def test_a_stream_naming_two_segment_ids_or_a_bad_id_is_refused(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = emulator.seed_list(AD_ACCOUNT, "Seeded", set())
    messages = audience_messages("audience", "Seeded", emails(3), segment_id=list_id)
    messages.append(record_message(segment_name="Seeded", segment_id="999", email="x@example.com"))
    run = target.run(messages)
    assert run.returncode != 0 and writes(emulator) == []
    assert f"'{list_id}'" in run.stderr and "'999'" in run.stderr
    run = target.run(audience_messages("audience", "Seeded", emails(3), segment_id="12ab"))
    assert run.returncode != 0 and writes(emulator) == []
    assert "segment_id must be digits" in run.stderr


def test_other_streams_still_sync_when_one_is_refused(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    bad = audience_messages("bad", "One", emails(2))
    bad.append(record_message("bad", segment_name="Two", email="z@example.com"))
    good = audience_messages("good", "Good", emails(3))
    run = target.run(bad + good)
    assert run.returncode != 0
    assert [entry["name"] for entry in emulator.lists(AD_ACCOUNT)] == ["Good"]
    assert run.states == []  # STATE would claim the refused stream's input too


# 5. The list --------------------------------------------------------------------------------


def test_segment_id_updates_that_list_and_a_missing_one_is_a_clear_error(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = emulator.seed_list(AD_ACCOUNT, "Existing", {sha("old@example.com")})
    run = target.run(audience_messages("audience", None, emails(3), segment_id=list_id))
    assert run.returncode == 0, run.stderr
    assert run.entry()["customer_list_id"] == list_id
    assert members_of(emulator, list_id) == {sha("old@example.com")} | {sha(a) for a in emails(3)}
    assert len(emulator.lists(AD_ACCOUNT)) == 1

    run = target.run(audience_messages("audience", "Whatever", emails(3), segment_id="424242"))
    assert run.returncode != 0
    assert "424242" in run.stderr and "segment_id" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(emulator.lists(AD_ACCOUNT)) == 1


def test_reuses_the_list_by_name_across_pages_and_never_creates_twice(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    for n in range(5):
        emulator.seed_list(AD_ACCOUNT, f"Other {n}", set())
    older = emulator.seed_list(AD_ACCOUNT, "Target List", set())
    emulator.seed_list(AD_ACCOUNT, "Other 6", set())
    newer = emulator.seed_list(AD_ACCOUNT, "Target List", set())
    emulator.seed_list(AD_ACCOUNT, "Target List (copy)", set())
    run = target.run(audience_messages("audience", "Target List", emails(4)))
    assert run.returncode == 0, run.stderr
    assert run.entry()["customer_list_id"] == newer  # the most recent of several
    assert members_of(emulator, older) == set()
    assert len(emulator.lists(AD_ACCOUNT)) == 9
    again = target.run(audience_messages("audience", "Target List", emails(4, start=10)))
    assert again.entry()["customer_list_id"] == newer
    assert len(emulator.lists(AD_ACCOUNT)) == 9


def test_rerun_without_id_creates_one_list_and_one_audience(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    first = target.run(audience_messages("audience", "Holiday Shoppers", emails(5)))
    second = target.run(audience_messages("audience", "Holiday Shoppers", emails(5, start=5)))
    assert first.returncode == second.returncode == 0, second.stderr
    assert len(emulator.lists(AD_ACCOUNT)) == 1
    assert len(emulator.audiences(AD_ACCOUNT)) == 1
    assert first.entry()["customer_list_id"] == second.entry()["customer_list_id"]
    assert first.entry()["audience_id"] == second.entry()["audience_id"]
    assert members_of(emulator, first.entry()["customer_list_id"]) == {sha(a) for a in emails(10)}


def test_the_summary_says_what_was_sent_not_what_changed(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # Issue 11.8: a rerun that changes nothing still sends its rows; "added" read as a change.
    messages = audience_messages("audience", "Unchanged", emails(7))
    messages += audience_messages("audience", "Unchanged", emails(2), action="remove")[1:]
    for run in (target.run(messages), target.run(messages)):
        assert run.returncode == 0, run.stderr
        (summary,) = [line for line in run.stderr.splitlines() if "Summary: stream" in line]
        assert "5 sent as ADD, 2 sent as REMOVE" in summary
        assert " added" not in summary and " removed" not in summary


# 7. The audience ----------------------------------------------------------------------------


def test_reuses_the_audience_of_the_list_across_pages(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = emulator.seed_list(AD_ACCOUNT, "Has Audience", set())
    other = emulator.seed_list(AD_ACCOUNT, "Other", set())
    for n in range(4):
        emulator.seed_audience(AD_ACCOUNT, f"Aud {n}", other)
    audience_id = emulator.seed_audience(AD_ACCOUNT, "Custom audience name", list_id)
    run = target.run(audience_messages("audience", "Has Audience", emails(3)))
    assert run.returncode == 0, run.stderr
    assert run.entry()["audience_id"] == audience_id
    assert len(emulator.audiences(AD_ACCOUNT)) == 5


def test_audience_created_named_after_the_list(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    run = target.run(audience_messages("audience", "Named", emails(3)))
    assert run.returncode == 0, run.stderr
    (audience,) = emulator.audiences(AD_ACCOUNT)
    assert audience["name"] == "Named"
    assert audience["rule"]["customer_list_id"] == run.entry()["customer_list_id"]
    assert run.entry()["audience_id"] == audience["id"]


def test_a_refused_audience_leaves_null_and_a_later_run_attaches_it(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.min_audience_size = 5
    run = target.run(audience_messages("audience", "Small", emails(3)))
    assert run.returncode == 0, run.stderr
    assert run.entry()["audience_id"] is None
    assert run.entry()["customer_list_id"]
    notes = [line for line in run.stderr.splitlines() if "will not attach an audience" in line]
    assert len(notes) == 1
    later = target.run(audience_messages("audience", "Small", emails(3, start=3)))
    assert later.returncode == 0, later.stderr
    assert later.entry()["audience_id"] == emulator.audiences(AD_ACCOUNT)[0]["id"]


# 8. STATE -----------------------------------------------------------------------------------


def test_state_keeps_the_taps_keys_and_adds_ours(target: TargetRunner) -> None:
    tap_state = {"bookmarks": {"audience": {"replication_key_value": "2026-11-01"}}, "other": 1}
    messages = audience_messages("audience", "Stateful", emails(3))
    messages.insert(2, {"type": "STATE", "value": {"bookmarks": {}}})
    messages.append({"type": "STATE", "value": tap_state})
    run = target.run(messages)
    assert run.returncode == 0, run.stderr
    assert len(run.states) == 1
    state = run.state
    assert state["bookmarks"] == tap_state["bookmarks"] and state["other"] == 1
    entry = state["pinterest_audiences"]["audience"]
    assert set(entry) >= {
        "ad_account_id", "segment_name", "customer_list_id", "audience_id", "list_type",
        "records_added", "records_removed", "records_invalid", "synced_at",
    }  # fmt: skip
    assert entry["ad_account_id"] == AD_ACCOUNT
    assert entry["segment_name"] == "Stateful"
    assert entry["records_added"] == 3


def test_state_is_written_without_any_tap_state(target: TargetRunner) -> None:
    run = target.run(audience_messages("audience", "No Tap State", emails(2)))
    assert run.returncode == 0, run.stderr
    assert set(run.state) == {"pinterest_audiences"}


def test_no_state_when_pinterest_did_not_accept(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("status", method="PATCH", status=403, times=100)
    run = target.run(audience_messages("audience", "Forbidden", emails(5)), records_per_request=2)
    assert run.returncode != 0
    assert run.states == []
    assert "403" in run.stderr and "Traceback" not in run.stderr


# 9. dry_run ---------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_writes_nothing(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    list_id = emulator.seed_list(AD_ACCOUNT, "Reused", set())
    messages = audience_messages("reused", "Reused", emails(4))
    messages += audience_messages("created", "Brand New", emails(2), action="remove")
    run = target.run(messages, dry_run=True)
    assert run.returncode == 0, run.stderr
    assert writes(emulator) == []
    assert f"would reuse customer list {list_id}" in run.stderr
    assert "would create customer list 'Brand New'" in run.stderr
    assert "would add 4 and remove 0" in run.stderr
    assert "would add 0 and remove 2" in run.stderr
    assert run.states == []


# 10. No raw identifier anywhere ---------------------------------------------------------------


def test_no_raw_identifier_leaves_the_process(
    target: TargetRunner, emulator: PinterestEmulator, tmp_path: Path
) -> None:
    addresses = emails(50, domain="secret-domain.example")
    messages = audience_messages("audience", "Private", addresses)
    messages.append(record_message(segment_name="Private", email="broken@@secret-domain.example"))
    run = target.run(messages, records_per_request=7, env={"LOGLEVEL": "DEBUG"})
    assert run.returncode == 0, run.stderr
    everything = run.stdout + run.stderr
    for request in emulator.requests:
        everything += json.dumps(request.body or {}) + request.path + json.dumps(request.query)
    for path in run.cwd.rglob("*"):
        if path.is_file() and path.name != "config.json":
            everything += path.read_bytes().decode(errors="replace")
    assert "secret-domain" not in everything
    assert TOKEN not in run.stdout + run.stderr


@pytest.mark.parametrize("sync_mode", ["explicit", "mirror"])
def test_a_line_that_is_not_json_sends_nothing_for_any_stream(
    target: TargetRunner, emulator: PinterestEmulator, sync_mode: str
) -> None:
    # Issue 9.9: a tap that died mid-line. Skipping the line would drop a row (in mirror mode,
    # remove a member), so the input is corrupted whatever on_invalid_record says.
    messages: list[dict | str] = list(audience_messages("a", "List A", emails(5)))
    messages += audience_messages("b", "List B", emails(5, start=5))
    messages.insert(8, '{"type": "RECORD", "stream": "b", "record": {"email": "trunc@secret')
    run = target.run(messages, sync_mode=sync_mode, on_invalid_record="skip")
    assert run.returncode == 1 and run.states == []
    assert "input line 9 is not valid JSON" in run.stderr
    assert "nothing was sent for any stream" in run.stderr
    assert writes(emulator) == [] and emulator.lists(AD_ACCOUNT) == []
    assert "secret" not in run.stderr and "Traceback" not in run.stderr


def test_a_secret_of_the_wrong_type_is_refused_without_echoing_it(target: TargetRunner) -> None:
    run = target.run(audience_messages("audience", "X", emails(1)), access_token=987654321)
    assert run.returncode != 0
    assert "access_token must be a string" in run.stderr
    assert "987654321" not in run.stderr + run.stdout


def test_a_stream_without_rows_is_nothing_to_do_in_explicit_mode(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = [schema_message("empty"), *audience_messages("full", "Full", emails(2))]
    run = target.run(messages)
    assert run.returncode == 0, run.stderr
    assert "Stream 'empty' has no rows" in run.stderr
    assert set(run.state["pinterest_audiences"]) == {"full"}
    assert [item["name"] for item in emulator.lists(AD_ACCOUNT)] == ["Full"]


def test_long_runs_log_progress_a_summary_and_the_sdk_metrics(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("latency", method="PATCH", seconds=0.2, times=None)
    messages = audience_messages("audience", "Progress", emails(100_000))
    run = target.run(messages, records_per_request=2000, _progress_interval_seconds=0.02)
    assert run.returncode == 0, run.stderr[-2000:]
    reading = [line for line in run.stderr.splitlines() if "rows read" in line]
    sending = [line for line in run.stderr.splitlines() if "members sent" in line]
    assert reading and "stream 'audience'" in reading[-1] and "rows/s" in reading[-1]
    assert sending and "in flight" in sending[-1] and " of 100000 members sent" in sending[-1]
    (summary,) = [line for line in run.stderr.splitlines() if "Summary: stream 'audience'" in line]
    for part in (
        "100000 rows",
        "0 invalid",
        "100000 sent as ADD",
        "0 sent as REMOVE",
        "write calls",
        "retries",
    ):
        assert part in summary
    counted = [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in run.stderr.splitlines()
        if "METRIC: " in line and '"record_count"' in line
    ]
    assert sum(metric["value"] for metric in counted) == 100_000


def test_stream_maps_still_work_through_the_sdk_path(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # The tap's stream "raw" is renamed and its rows filtered by a user's stream map; the
    # fast path steps aside for the SDK's per-record path, which applies the map.
    messages = audience_messages("raw", "Mapped", emails(6))
    stream_maps = {"raw": {"__alias__": "audience", "__filter__": "not email.startswith('user5@')"}}
    run = target.run(messages, stream_maps=stream_maps, _parallel_workers=2)
    assert run.returncode == 0, run.stderr[-2000:]
    entry = run.entry("audience")
    assert entry["records_added"] == 5
    assert members_of(emulator, entry["customer_list_id"]) == {sha(a) for a in emails(5)}
