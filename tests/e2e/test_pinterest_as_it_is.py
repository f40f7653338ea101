"""Issue 9: the target against an emulator as strict as Pinterest, through the real CLI.

Each test turns on the emulator's Pinterest behaviour it is about (asynchronous matching with
a match fraction and Pinterest's 100 matched users, a body limit, a daily quota, scopes,
removed audiences, exceptions) and checks what the target does and says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import (
    AD_ACCOUNT,
    TargetRunner,
    audience_messages,
    emails,
    sha,
    writes,
)

FAST = {"_retry_base_seconds": 0.01, "_lost_create_settle_seconds": 0.5}


@pytest.fixture
def strict() -> Iterator[PinterestEmulator]:
    """Pinterest's documented behaviour (matching at once, so that a run can read it back)."""
    with PinterestEmulator(page_size=2, matching_delay=0) as server:
        yield server
        assert server.spec_violations == [], server.spec_violations


@pytest.fixture
def run(strict: PinterestEmulator, tmp_path: Path) -> TargetRunner:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return TargetRunner(strict, workdir)


def matched(addresses: list[str], fraction: float = 0.6) -> int:
    """Members the emulator counts as Pinterest users (its documented, deterministic rule)."""
    return sum(int(sha(a)[:8], 16) / 16**8 < fraction for a in addresses)


def summary(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if "Summary: stream" in line]
    return line


def errors(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if "ERROR" in line)


# ---- 4. 413: split and go on -------------------------------------------------------------------


def test_a_call_too_large_is_split_and_the_smaller_size_kept(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    strict.configure(max_body_bytes=20_000)  # about 300 hashes a call
    addresses = emails(1000)
    result = run.run(audience_messages("audience", "Big", addresses), records_per_request=1000)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.entry()["records_added"] == 1000
    (listed,) = strict.lists(AD_ACCOUNT)
    assert strict.members(AD_ACCOUNT, listed["id"]) == {sha(a) for a in addresses}
    accepted = [r for r in writes(strict) if r.status == 200 and "customer_lists" in r.path]
    refused = [r for r in writes(strict) if r.status == 413]
    assert refused and refused[0].method == "POST"  # the create's first chunk too
    sizes = [len(r.body["records"].split(",")) for r in accepted]
    assert max(sizes) <= 250 and sum(sizes) == 1000
    # once smaller, every later call stays small: only the first calls were refused
    assert len(refused) <= 3
    assert "too large (HTTP 413)" in result.stderr


# ---- 5. the audience ---------------------------------------------------------------------------


def test_a_list_too_small_for_an_audience_succeeds_and_a_later_run_attaches_it(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    few = emails(40)
    first = run.run(audience_messages("audience", "Small", few))
    assert first.returncode == 0, first.stderr[-3000:]
    entry = first.entry()
    assert entry["audience_id"] is None and entry["list_status"] == "TOO_SMALL"
    assert "too few matched users" in first.stderr
    second = run.run(audience_messages("audience", "Small", emails(400)))
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.entry()["audience_id"] is not None
    assert second.entry()["customer_list_id"] == entry["customer_list_id"]


def test_any_other_audience_refusal_fails_the_stream_with_pinterests_words(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    strict.add_fault(
        "status", method="POST", path="/audiences$", status=400, code=2601, message="Bad rule."
    )
    result = run.run(audience_messages("audience", "Refused", emails(300)), **FAST)
    assert result.returncode == 1 and result.states == []
    text = errors(result.stderr)
    assert "code 2601: Bad rule." in text and "customer list" in text and "ads:write" in text


def test_a_removed_audience_is_not_reused(run: TargetRunner, strict: PinterestEmulator) -> None:
    list_id = strict.seed_list(AD_ACCOUNT, "Comeback", {sha(a) for a in emails(300)})
    removed = strict.seed_audience(AD_ACCOUNT, "Comeback", list_id, status="REMOVED")
    result = run.run(audience_messages("audience", "Comeback", emails(300)))
    assert result.returncode == 0, result.stderr[-3000:]
    attached = result.entry()["audience_id"]
    assert attached is not None and attached != removed
    assert {a["id"]: a["status"] for a in strict.audiences(AD_ACCOUNT)}[removed] == "REMOVED"


# ---- 6. scopes ---------------------------------------------------------------------------------


def test_a_token_without_the_write_scope_fails_at_once_without_refreshing(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    strict.add_access_token("read-only-token", scope="ads:read")
    result = run.run(
        audience_messages("audience", "Scoped", emails(5)),
        access_token="read-only-token",
        refresh_token="test-refresh-token",
        client_id="test-client-id",
        client_secret="test-client-secret",
    )
    assert result.returncode == 1 and result.states == []
    text = errors(result.stderr)
    assert "ads:write" in text and "ads:read" in text and "Re-authorize" in text
    assert [r for r in strict.requests if "/oauth/" in r.path] == []
    assert len([r for r in strict.requests if r.status == 401]) == 1


# ---- 7. a quota that will not lift in time ------------------------------------------------------


def test_an_exhausted_daily_quota_stops_the_run_and_the_next_day_completes(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    strict.configure(daily_quota=12)
    addresses = emails(200)
    messages = audience_messages("a", "Daily A", addresses)
    messages += audience_messages("b", "Daily B", emails(50, start=500))
    config = {"records_per_request": 10, **FAST}
    first = run.run(messages, **config)
    assert first.returncode == 1 and first.states == []
    text = errors(first.stderr)
    assert "quota is used up; it resets in" in text and "UTC" in text
    # The streams sync side by side: each either met the wall itself or was stopped by it.
    for stream in "ab":
        said = rf"Stream '{stream}' (failed|was not synced): Pinterest's write quota"
        assert re.search(said, text)
    walls = [r for r in strict.requests if r.status == 429]
    assert 1 <= len(walls) <= 16  # the calls in flight at most: none retried into the wall
    assert "; retry " not in first.stderr
    strict.new_day()
    strict.configure(daily_quota=0)
    second = run.run(messages, **config)
    assert second.returncode == 0, second.stderr[-3000:]
    by_name = {x["name"]: x["id"] for x in strict.lists(AD_ACCOUNT)}
    assert strict.members(AD_ACCOUNT, by_name["Daily A"]) == {sha(a) for a in addresses}
    assert len(strict.lists(AD_ACCOUNT)) == 2


# ---- 8. exceptions -----------------------------------------------------------------------------


def test_records_pinterest_could_not_use_are_counted_by_code(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    addresses = emails(300)
    strict.declare_unusable({sha(a) for a in addresses[:3]}, code=1002)
    result = run.run(audience_messages("audience", "Unusable", addresses))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.entry()["pinterest_exceptions"] == {"1002": 3}
    assert "Pinterest could not use 3 record(s) (code 1002: 3)" in summary(result.stderr)
    assert not any(sha(a) in result.stderr for a in addresses[:3])


# ---- 10. what Pinterest made of it --------------------------------------------------------------


def test_state_and_summary_report_what_pinterest_matched(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    addresses = emails(1000)
    result = run.run(audience_messages("audience", "Matched", addresses), sync_mode="mirror")
    assert result.returncode == 0, result.stderr[-3000:]
    entry = result.entry()
    size = matched(addresses)
    assert (entry["list_status"], entry["audience_status"]) == ("READY", "READY")
    assert entry["audience_size"] == size and entry["members"] == 1000
    assert entry["match_rate"] == round(size / 1000, 4)
    line = summary(result.stderr)
    assert f"audience READY with {size} matched users ({size / 1000:.0%} of the 1000 members)" in (
        line
    )
    assert "lag by up to 48 hours" in line
    print(json.dumps(entry, indent=1))


def test_while_pinterest_still_matches_the_figures_say_so(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    strict.configure(matching_delay=3600)
    result = run.run(audience_messages("audience", "Pending", emails(300)), sync_mode="mirror")
    assert result.returncode == 0, result.stderr[-3000:]
    entry = result.entry()
    assert entry["list_status"] == "PROCESSING" and entry["audience_status"] == "INITIALIZING"
    assert entry["audience_size"] is None and entry["match_rate"] is None
    assert "audience INITIALIZING" in summary(result.stderr)


# ---- issue 11.3: the stream now names another list -----------------------------------------------


def test_a_stream_whose_list_changed_since_the_last_run_warns_naming_both(
    run: TargetRunner, strict: PinterestEmulator
) -> None:
    first = run.run(audience_messages("audience", "Old Name", emails(5)))
    assert first.returncode == 0, first.stderr[-3000:]
    old_id = first.entry()["customer_list_id"]
    # Meltano hands the last STATE back to the tap, which sends it on
    messages = [{"type": "STATE", "value": first.state}]
    messages += audience_messages("audience", "New Name", emails(5))
    second = run.run(messages)
    assert second.returncode == 0, second.stderr[-3000:]
    new_id = second.entry()["customer_list_id"]
    (warning,) = [line for line in second.stderr.splitlines() if "previous run loaded" in line]
    assert "WARNING" in warning and old_id in warning and new_id in warning
    assert "'Old Name'" in warning and "'New Name'" in warning
