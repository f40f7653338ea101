"""Issue 20.1-2, through the CLI on both ledger back ends: members a list holds from elsewhere.

The whole story a user lives: explicit runs, then the stream switched to mirror mode (the
explicit runs' members are known: the first mirror run handles them, and its summary's count is
the list's); a list filled by another tool (warned about on every mirror run, with how many and
from where, until the user takes a way out: the old members sent once as explicit remove rows,
or a fresh list); and a call sent twice after a lost answer, which is no member from elsewhere.
"""

from __future__ import annotations

import re

import requests

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, TOKEN, Run, audience_messages, emails
from tests.e2e.test_mirror import Backend, Mirror, hashes, ok, only_list, sent

WARNED = "has no record of"


def warnings_about_outside(run: Run) -> list[str]:
    return [line for line in run.stderr.splitlines() if WARNED in line]


def summary(run: Run) -> str:
    (line,) = [line for line in run.stderr.splitlines() if "Summary: stream" in line]
    return line


def another_tool_adds(emulator: PinterestEmulator, list_id: str, addresses: list[str]) -> None:
    """What another tool does: an ADD call of its own, through Pinterest's API."""
    answer = requests.patch(
        f"{emulator.url}/ad_accounts/{AD_ACCOUNT}/customer_lists/{list_id}",
        json={"operation_type": "ADD", "records": ",".join(sorted(hashes(addresses)))},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def uploaded(emulator: PinterestEmulator, list_id: str) -> int:
    (found,) = [c for c in emulator.lists(AD_ACCOUNT) if str(c["id"]) == list_id]
    return int(found["num_uploaded_user_records"])


def test_the_first_mirror_run_after_explicit_runs_handles_their_members(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    old, more = emails(8, domain="before.example"), emails(2, start=100, domain="before.example")
    # Explicit runs: the same members sent twice (Pinterest counts every record again), one
    # removed. Pinterest's counter ends far above the members (the 490 for 260).
    ok(mirror.run(audience_messages("audience", "Switch", old), sync_mode="explicit"))
    ok(mirror.run(audience_messages("audience", "Switch", old + more), sync_mode="explicit"))
    ok(mirror.run(audience_messages("audience", "Switch", old[:1], "remove"), sync_mode="explicit"))
    list_id = only_list(emulator)
    in_list = old[1:] + more
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(in_list)
    assert uploaded(emulator, list_id) == 18
    assert backend.members(list_id) == hashes(in_list)  # the explicit runs were recorded

    # The stream switches to mirror mode: 6 of the 9 stay, 4 join.
    stream = in_list[:6] + emails(4, domain="after.example")
    mark = len(emulator.requests)
    run = ok(mirror.run(audience_messages("audience", "Switch", stream)))
    assert warnings_about_outside(run) == [], run.stderr[-3000:]
    adds, removes = sent(emulator, mark)
    assert sorted(adds) == sorted(hashes(stream[6:]))
    assert sorted(removes) == sorted(hashes(in_list[6:]))  # explicit runs' members, known
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(stream)
    # 20.2: the summary's count is the list's
    assert "the list should now hold 10 members (4 joined, 3 left, 0 left out" in summary(run)
    assert run.entry()["members"] == len(emulator.members(AD_ACCOUNT, list_id)) == 10
    assert run.entry()["match_rate"] == 1.0

    run = ok(mirror.run(audience_messages("audience", "Switch", stream)))
    assert warnings_about_outside(run) == []
    assert "the list should now hold 10 members (0 joined, 0 left" in summary(run)


def test_a_list_filled_by_another_tool_warns_until_a_way_out_is_taken(
    mirror: Mirror, emulator: PinterestEmulator, backend: Backend
) -> None:
    theirs, ours = emails(5, domain="tool.example"), emails(8)
    list_id = emulator.seed_list(AD_ACCOUNT, "Shared", sorted(hashes(theirs)))
    # Every mirror run says it (Pinterest's counters and the ledger as the run starts).
    for counted, accounted in ((5, 0), (13, 8)):
        run = ok(mirror.run(audience_messages("audience", "Shared", ours)))
        (warning,) = warnings_about_outside(run)
        assert "WARNING" in warning and f"customer list {list_id}" in warning
        assert "up to 5 member(s)" in warning
        assert f"Pinterest counts {counted} records uploaded to it" in warning
        assert f"this target accounts for {accounted} of them" in warning
        assert f"its ledger knows: {accounted} now" in warning
        assert "another tool, Ads Manager" in warning
        assert "a new segment_name" in warning and "explicit remove rows" in warning
        assert "takes these 5 records as handled" in warning
        # 20.2: the summary says so in the same line, not a number that is wrong
        assert "the list should now hold the stream's 8 members (" in summary(
            run
        ) and "and up to 5 more uploaded from elsewhere" in summary(run), summary(run)
        assert run.entry()["match_rate"] is None  # the list's size is not known
        assert emulator.members(AD_ACCOUNT, list_id) == hashes(ours) | hashes(theirs)
        assert backend.members(list_id) == hashes(ours)

    # An explicit run that removes nothing is no way out.
    ok(mirror.run(audience_messages("audience", "Shared", ours[:2]), sync_mode="explicit"))
    run = ok(mirror.run(audience_messages("audience", "Shared", ours)))
    assert "up to 5 member(s)" in warnings_about_outside(run)[0]

    # The way out: their members sent once as explicit remove rows.
    removal = audience_messages("audience", "Shared", theirs, action="remove")
    run = ok(mirror.run(removal, sync_mode="explicit"))
    assert re.search(r"the 5 record\(s\) uploaded from elsewhere .* taken as handled", run.stderr)
    assert emulator.members(AD_ACCOUNT, list_id) == hashes(ours)
    for _ in range(2):
        run = ok(mirror.run(audience_messages("audience", "Shared", ours)))
        assert warnings_about_outside(run) == [], run.stderr[-3000:]
        assert "the list should now hold 8 members (0 joined" in summary(run)
        assert run.entry()["match_rate"] == 1.0

    # Later uploads from elsewhere are warned about again, by their own count only.
    another_tool_adds(emulator, list_id, emails(3, domain="later.example"))
    run = ok(mirror.run(audience_messages("audience", "Shared", ours)))
    (warning,) = warnings_about_outside(run)
    assert "up to 3 member(s)" in warning and "accounts for 15 of them" in warning

    # The other way out: a fresh list.
    run = ok(mirror.run(audience_messages("audience", "Shared 2027", ours)))
    assert warnings_about_outside(run) == []


def test_a_call_sent_again_after_a_lost_answer_is_no_member_from_elsewhere(
    mirror: Mirror, emulator: PinterestEmulator
) -> None:
    # Pinterest applied the call, its answer was lost, the call went again: Pinterest counted
    # its records twice. They are this target's own, in both sync modes.
    members = emails(12)
    emulator.add_fault("drop_after", method="PATCH", times=1)
    ok(mirror.run(audience_messages("audience", "Twice", members), records_per_request=4))
    list_id = only_list(emulator)
    assert uploaded(emulator, list_id) == 16  # 12 members, one call of 4 counted twice
    emulator.add_fault("drop_after", method="PATCH", times=1)
    more = emails(8, start=50)
    explicit = audience_messages("audience", "Twice", more)
    ok(mirror.run(explicit, sync_mode="explicit", records_per_request=4))
    assert uploaded(emulator, list_id) == 28
    run = ok(mirror.run(audience_messages("audience", "Twice", members + more)))
    assert "WARNING" not in run.stderr, run.stderr[-3000:]
    assert "the list should now hold 20 members (0 joined, 0 left" in summary(run)
    assert run.entry()["match_rate"] == 1.0
