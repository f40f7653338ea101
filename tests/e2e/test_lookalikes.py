"""Issue 18: lookalike (ACTALIKE) audiences from the same run, through the CLI against the
emulator (strict: seeds need 100 matched users, countries US, CA and GB)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, TargetRunner, audience_messages, emails

FAST = {"_retry_base_seconds": 0.01, "_lost_create_settle_seconds": 0.5}
TWO = [{"country": "US", "percentage": 5}, {"country": "CA", "percentage": 1, "name": "Maple"}]


def settings(lookalikes: list[dict[str, Any]], stream: str = "audience", **more: Any) -> Any:
    return {"streams": {stream: {"lookalikes": lookalikes, **more}}}


def lookalikes(emulator: PinterestEmulator) -> list[dict[str, Any]]:
    return [a for a in emulator.audiences(AD_ACCOUNT) if a["audience_type"] == "ACTALIKE"]


def seed_of(emulator: PinterestEmulator) -> dict[str, Any]:
    [seed] = [a for a in emulator.audiences(AD_ACCOUNT) if a["audience_type"] == "CUSTOMER_LIST"]
    return seed


def posts(emulator: PinterestEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/audiences")]


def test_two_lookalikes_are_created_after_the_seed_and_a_rerun_creates_nothing(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = audience_messages("audience", "Holiday Shoppers", emails(150))
    run = target.run(messages, **settings(TWO))
    assert run.returncode == 0, run.stderr[-3000:]
    seed = seed_of(emulator)
    made = {(a["rule"]["country"], a["rule"]["percentage"]): a for a in lookalikes(emulator)}
    assert sorted(made) == [("CA", 1), ("US", 5)]
    for audience in made.values():
        assert audience["rule"]["seed_id"] == [seed["id"]]
    assert made[("US", 5)]["name"] == "Holiday Shoppers (lookalike US 5%)"
    assert made[("CA", 1)]["name"] == "Maple"
    entry = run.entry()
    assert entry["lookalikes"] == [
        {
            "country": "US",
            "percentage": 5,
            "name": "Holiday Shoppers (lookalike US 5%)",
            "audience_id": made[("US", 5)]["id"],
            "status": "READY",
            "size": 4_500_000,
        },
        {
            "country": "CA",
            "percentage": 1,
            "name": "Maple",
            "audience_id": made[("CA", 1)]["id"],
            "status": "READY",
            "size": 100_000,
        },
    ]
    assert "lookalikes: US 5% audience" in run.stderr and "CA 1% audience" in run.stderr
    before = len(posts(emulator))
    again = target.run(messages, **settings(TWO))
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(posts(emulator)) == before  # found by seed, country and percentage
    assert again.entry()["lookalikes"] == entry["lookalikes"]


def test_a_lost_create_answer_never_makes_two_lookalikes(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.add_fault("drop_after", method="POST", path=r"/audiences$", skip=1)  # the first one
    run = target.run(
        audience_messages("audience", "Lost", emails(150)), **settings(TWO[:1]), **FAST
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the answer to creating lookalike US 5% was lost" in run.stderr
    assert len(lookalikes(emulator)) == 1
    assert run.entry()["lookalikes"][0]["audience_id"] == lookalikes(emulator)[0]["id"]


def test_a_too_small_seed_defers_and_a_later_run_creates(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # 50 members: the audience exists (the test emulator needs no matched users for it), but
    # Pinterest refuses it as the seed of a lookalike (100 needed).
    first = target.run(audience_messages("audience", "Small", emails(50)), **settings(TWO))
    assert first.returncode == 0, first.stderr[-3000:]
    assert lookalikes(emulator) == []
    waiting = first.entry()["lookalikes"]
    assert [w["audience_id"] for w in waiting] == [None, None]
    assert all("too small" in w["waiting"] for w in waiting)
    assert "lookalike US 5% waits: Pinterest refused the seed audience" in first.stderr
    assert "US 5% waiting (Pinterest refused the seed audience" in first.stderr  # summary
    second = target.run(audience_messages("audience", "Small", emails(150)), **settings(TWO))
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(lookalikes(emulator)) == 2
    assert all(w["audience_id"] for w in second.entry()["lookalikes"])


def test_a_stream_without_an_audience_yet_defers_its_lookalikes(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.configure(min_matched_users=100)  # 40 members: the list is TOO_SMALL, no audience
    run = target.run(audience_messages("audience", "Tiny", emails(40)), **settings(TWO))
    assert run.returncode == 0, run.stderr[-3000:]
    entry = run.entry()
    assert entry["audience_id"] is None
    assert [w["audience_id"] for w in entry["lookalikes"]] == [None, None]
    assert all("no audience yet" in w["waiting"] for w in entry["lookalikes"])
    assert lookalikes(emulator) == []


def test_a_country_pinterest_does_not_offer_fails_the_stream_with_its_words(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = audience_messages("audience", "Abroad", emails(150))
    messages += audience_messages("other", "Home", emails(120, start=500))
    run = target.run(messages, **settings([{"country": "FR", "percentage": 2}]))
    assert run.returncode == 1 and run.states == []
    text = run.stderr
    assert "Stream 'audience': the customer list and its audience" in text
    assert "is not available" in text and "code 2625" in text
    assert "streams.audience.lookalikes entry FR 2%" in text
    assert "Pinterest names US, CA and GB" in text
    assert len(emulator.lists(AD_ACCOUNT)) == 2  # the other stream synced all the same


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([{"country": "us", "percentage": 5}], "entry 1 ('us', 5): country: expected a two-letter"),
        ([{"country": "US", "percentage": 11}], "entry 1 ('US', 11): percentage: expected a whole"),
        ([{"country": "US", "percentage": "5"}], "percentage: expected a whole number from 1 to"),
        ([*TWO, {"country": "US", "percentage": 5}], "entry 3 ('US', 5): the same country and"),
        ([{"country": "US", "percentage": 5, "seed": "x"}], "'seed' is not a lookalike key"),
        ({"country": "US"}, "expected a list of lookalikes"),
    ],
)
def test_a_bad_lookalike_setting_sends_nothing(
    target: TargetRunner, emulator: PinterestEmulator, entries: Any, words: str
) -> None:
    run = target.run(audience_messages("audience", "Bad", emails(5)), **settings(entries))
    assert run.returncode != 0 and run.states == []
    assert "streams: stream 'audience': lookalikes" in run.stderr
    assert words in run.stderr
    assert emulator.requests == []  # refused before any call, before any input


def test_a_changed_name_renames_and_an_unconfigured_one_is_left_with_a_warning(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = audience_messages("audience", "Names", emails(150))
    assert target.run(messages, **settings(TWO)).returncode == 0
    made = {a["rule"]["country"]: a["id"] for a in lookalikes(emulator)}
    renamed = [{"country": "US", "percentage": 5, "name": "Renamed US"}]
    run = target.run(messages, **settings(renamed))
    assert run.returncode == 0, run.stderr[-3000:]
    by_id = {a["id"]: a for a in lookalikes(emulator)}
    assert by_id[made["US"]]["name"] == "Renamed US"
    assert made["CA"] in by_id  # left in place: campaigns may use it
    assert f"lookalike audience {made['CA']} ('Maple', CA 1%)" in run.stderr
    assert "it is left in place" in run.stderr
    assert [e["audience_id"] for e in run.entry()["lookalikes"]] == [made["US"]]


def test_a_mirror_stream_whose_audience_was_removed_gets_new_lookalikes_on_the_new_seed(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    config = {"sync_mode": "mirror", **settings(TWO[:1])}
    messages = audience_messages("audience", "Mirrored", emails(150))
    assert target.run(messages, **config).returncode == 0
    old_seed = seed_of(emulator)["id"]
    [old] = lookalikes(emulator)
    with emulator._lock:  # Pinterest removed the audience (in Ads Manager, say)
        emulator.model.audiences[AD_ACCOUNT][old_seed].status = "REMOVED"
    run = target.run(messages, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    new_seed = run.entry()["audience_id"]
    assert new_seed not in (None, old_seed)
    new = [a for a in lookalikes(emulator) if a["rule"]["seed_id"] == [new_seed]]
    assert len(new) == 1 and new[0]["id"] != old["id"]
    assert run.entry()["lookalikes"][0]["audience_id"] == new[0]["id"]


def test_dry_run_says_which_lookalikes_it_would_create(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = audience_messages("audience", "Planned", emails(150))
    assert target.run(messages, **settings(TWO[:1])).returncode == 0
    run = target.run(messages, dry_run=True, **settings(TWO))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "would reuse lookalike US 5% (" in run.stderr
    assert "would create lookalike CA 1%" in run.stderr
    assert len(lookalikes(emulator)) == 1


def test_100_streams_with_two_lookalikes_each_stay_within_the_quotas(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    emulator.configure(min_seed_size=1)
    messages: list[dict[str, Any]] = []
    config: dict[str, Any] = {"streams": {}}
    for n in range(100):
        messages += audience_messages(f"s{n}", f"Seg {n}", emails(3, start=n * 3))
        config["streams"][f"s{n}"] = {"lookalikes": TWO}
    run = target.run(messages, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [r for r in emulator.requests if r.status == 429]
    assert len(lookalikes(emulator)) == 200
    entries = run.state["pinterest_audiences"]
    assert all(len(e["lookalikes"]) == 2 for e in entries.values())
    assert all(x["audience_id"] for e in entries.values() for x in e["lookalikes"])
    assert json.dumps(entries).count('"status": "READY"') >= 200
