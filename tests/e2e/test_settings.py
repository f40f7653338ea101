"""Settings as a user writes them, through the real CLI against the emulator.

Per-stream settings (`streams`, issue 10.1), the IDFA case (issue 9.11), settings refused in
words instead of JSON-schema errors (issue 11.5), and the SDK's settings that mean nothing here
kept out of --about (issue 11.11).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.target import IGNORED_SDK_SETTINGS
from tests.conftest import (
    AD_ACCOUNT,
    TargetRunner,
    audience_messages,
    emails,
    record_message,
    schema_message,
    sha,
    writes,
)


def errors(stderr: str) -> list[str]:
    return [line.split("| ERROR", 1)[1] for line in stderr.splitlines() if "| ERROR" in line]


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "WARNING" in line]


def two_streams(mirror_members: list[str], explicit_members: list[str]) -> list[dict]:
    return [
        *audience_messages("holiday", "Holiday Shoppers", mirror_members, action=None),
        *audience_messages("lapsed", "Lapsed Customers", explicit_members),
    ]


# ---- 10.1: per-stream settings ------------------------------------------------------------------


def test_streams_name_and_describe_each_audience_and_an_existing_one_is_updated(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    streams = {
        "holiday": {"audience_name": "Holiday shoppers 2026", "audience_description": "December"},
        "lapsed": {"audience_description": "No order in a year"},
    }
    first = target.run(two_streams(emails(3), emails(2, 10)), streams=streams)
    assert first.returncode == 0, first.stderr
    audiences = {a["rule"]["customer_list_id"]: a for a in emulator.audiences(AD_ACCOUNT)}
    holiday = audiences[first.entry("holiday")["customer_list_id"]]
    lapsed = audiences[first.entry("lapsed")["customer_list_id"]]
    assert (holiday["name"], holiday["description"]) == ("Holiday shoppers 2026", "December")
    assert (lapsed["name"], lapsed["description"]) == ("Lapsed Customers", "No order in a year")

    streams["holiday"] = {"audience_name": "Holiday shoppers", "audience_description": "Winter"}
    second = target.run(two_streams(emails(3), emails(2, 10)), streams=streams)
    assert second.returncode == 0, second.stderr
    (updated,) = [a for a in emulator.audiences(AD_ACCOUNT) if a["id"] == holiday["id"]]
    assert (updated["name"], updated["description"]) == ("Holiday shoppers", "Winter")
    assert len(emulator.audiences(AD_ACCOUNT)) == 2  # updated, not created again
    assert "configured name and description" in second.stderr


def test_a_stream_may_mirror_while_the_others_stay_explicit(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    streams = {"holiday": {"sync_mode": "mirror", "max_removal_fraction": 1, "list_type": "EMAIL"}}
    first = target.run(two_streams(emails(4), emails(2, 10)), streams=streams)
    assert first.returncode == 0, first.stderr
    # Mirror: the second run's stream is the whole list, so who is missing is removed ...
    second = target.run(two_streams(emails(1), emails(1, 20)), streams=streams)
    assert second.returncode == 0, second.stderr
    holiday = second.entry("holiday")["customer_list_id"]
    lapsed = second.entry("lapsed")["customer_list_id"]
    assert emulator.members(AD_ACCOUNT, holiday) == {sha(e) for e in emails(1)}
    # ... explicit: rows only add, nobody missing is removed.
    assert emulator.members(AD_ACCOUNT, lapsed) == {sha(e) for e in emails(2, 10) + emails(1, 20)}
    assert second.entry("holiday")["members"] == 1  # mirror figures only for the mirror stream
    assert "members" not in second.entry("lapsed")


def test_a_per_stream_guard_overrides_the_global_one(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    config = {"sync_mode": "mirror", "streams": {"holiday": {"max_removal_fraction": 0.1}}}
    assert target.run(two_streams(emails(10), emails(10, 10)), **config).returncode == 0
    # Each stream loses 3 of 10 members: within the global 0.5, over holiday's own 0.1.
    rerun = target.run(two_streams(emails(7), emails(7, 10)), **config)
    assert rerun.returncode != 0
    assert any(
        "holiday" in line and "max_removal_fraction" in line for line in errors(rerun.stderr)
    )
    lapsed = rerun.stderr.count("Summary: stream 'lapsed'")
    assert lapsed == 1, rerun.stderr


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        (
            {"holiday": {"audience_nam": "Holiday"}},
            "streams: stream 'holiday': 'audience_nam' is not a per-stream setting",
        ),
        (
            {"holiday": {"max_removal_fraction": "half"}},
            "streams: stream 'holiday': max_removal_fraction: expected a number from 0 to 1",
        ),
        (
            {"holiday": {"sync_mode": "full"}},
            "streams: stream 'holiday': sync_mode: expected 'explicit' or 'mirror', got 'full'",
        ),
        ({"holiday": "mirror"}, "streams: stream 'holiday': expected an object"),
        (["holiday"], "streams: expected an object of per-stream settings keyed by stream name"),
    ],
)
def test_a_wrong_per_stream_setting_is_refused_naming_stream_and_key_before_anything_is_sent(
    target: TargetRunner, emulator: PinterestEmulator, streams: object, expected: str
) -> None:
    run = target.run(two_streams(emails(3), emails(2, 10)), streams=streams)
    assert run.returncode != 0
    assert any(expected in line for line in errors(run.stderr)), run.stderr
    assert emulator.requests == []  # refused before any call, the credentials check included
    assert not run.states


def test_a_stream_in_the_setting_that_never_arrives_is_warned_of(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    streams = {"holiday": {"audience_name": "Holiday"}, "public-holliday": {"sync_mode": "mirror"}}
    run = target.run(two_streams(emails(3), emails(2, 10)), streams=streams)
    assert run.returncode == 0, run.stderr
    (warning,) = [w for w in warnings(run.stderr) if "never arrived" in w]
    assert "'public-holliday'" in warning
    assert not any("'holiday'" in w for w in warnings(run.stderr) if "never arrived" in w)


# ---- 9.11: the case of IDFAs -------------------------------------------------------------------

IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
MAID = "CDDA802E-FB9C-47AD-9866-0794D394C912"


@pytest.mark.parametrize(("idfa_case", "idfa_hash"), [(None, IDFA.lower()), ("upper", IDFA)])
def test_idfa_case_chooses_how_idfas_are_hashed_and_maids_stay_lowercase(
    target: TargetRunner, emulator: PinterestEmulator, idfa_case: str | None, idfa_hash: str
) -> None:
    messages = [
        schema_message(),
        record_message(segment_name="Devices", idfa=f" {IDFA.lower()} ", maid=MAID),
    ]
    run = target.run(messages, idfa_case=idfa_case)
    assert run.returncode == 0, run.stderr
    list_id = run.entry()["customer_list_id"]
    assert emulator.members(AD_ACCOUNT, list_id) == {sha(idfa_hash), sha(MAID.lower())}


# ---- 11.5: settings refused in words ------------------------------------------------------------


def test_an_ad_account_id_written_as_a_number_works(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    run = target.run(
        audience_messages("audience", "Shoppers", emails(2)), ad_account_id=int(AD_ACCOUNT)
    )
    assert run.returncode == 0, run.stderr
    assert run.entry()["ad_account_id"] == AD_ACCOUNT
    assert len(emulator.lists(AD_ACCOUNT)) == 1


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("ad_account_id", "act_549755885175", "drop the 'act_' prefix ('549755885175'"),
        ("ad_account_id", "549 755 885 175", "digits only, as in the Ads Manager URL"),
        ("records_per_request", 20000, "records_per_request: expected a whole number from 1 to"),
        ("sync_mode", "Mirror", "sync_mode: expected 'explicit' or 'mirror', got 'Mirror'"),
        ("max_removal_fraction", 50, "max_removal_fraction: expected a number from 0 to 1"),
        ("dry_run", "yes", "dry_run: expected true or false, got 'yes'"),
        ("api_url", "api.pinterest.com/v5", "api_url: expected an http(s) URL"),
        ("list_type", "email", "list_type: expected 'EMAIL' or 'IDFA' or 'MAID'"),
        ("idfa_case", "UPPER", "idfa_case: expected 'lower' or 'upper'"),
    ],
)
def test_a_wrong_setting_is_refused_in_words_naming_it(
    target: TargetRunner, emulator: PinterestEmulator, setting: str, value: object, expected: str
) -> None:
    run = target.run(audience_messages("audience", "Shoppers", emails(2)), **{setting: value})
    assert run.returncode != 0
    said = errors(run.stderr)
    assert any(expected in line for line in said), run.stderr
    assert not any("is not of type" in line or "does not match" in line for line in said)
    assert emulator.requests == []


# ---- 11.11: the SDK's settings that mean nothing here --------------------------------------------


def test_about_lists_no_sdk_setting_that_means_nothing_here() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences", "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(about.stdout)
    settings = info["settings"]["properties"]
    for name in ("add_record_metadata", "load_method", "batch_size_rows", "validate_records"):
        assert name in IGNORED_SDK_SETTINGS
        assert name not in settings, name
    assert "validate-records" not in info["capabilities"]
    # What does work stays: stream maps and flattening, and the target's own settings.
    assert {"stream_maps", "flattening_enabled", "streams", "idfa_case"} <= set(settings)


def test_a_meaningless_sdk_setting_in_the_config_does_no_harm(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    run = target.run(
        audience_messages("audience", "Shoppers", emails(3)),
        add_record_metadata=True,
        batch_size_rows=1,
        load_method="overwrite",
    )
    assert run.returncode == 0, run.stderr
    assert len(writes(emulator)) == 2  # the create (with the members) and the audience
