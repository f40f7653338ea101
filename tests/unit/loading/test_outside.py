"""Members from elsewhere, from Pinterest's counters (issue 20.1): the pure rules, as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from target_pinterest_audiences.ledger import UploadTally
from target_pinterest_audiences.loading.outside import Outside, accounted_for

counts = st.integers(min_value=0, max_value=10**9)


@given(accounted=counts, uploaded=counts, removed=counts, legacy=st.none() | counts)
def test_a_counted_list_is_what_the_ledger_says(
    accounted: int, uploaded: int, removed: int, legacy: int | None
) -> None:
    tally = UploadTally(accounted=accounted, legacy_net=legacy, warned=0, recorded=True)
    assert accounted_for(tally, uploaded, removed) == accounted


@given(uploaded=counts, removed=counts)
def test_a_version_1_list_is_taken_as_accounted_for(uploaded: int, removed: int) -> None:
    tally = UploadTally(accounted=None, legacy_net=None, warned=0, recorded=True)
    assert Outside(uploaded, accounted_for(tally, uploaded, removed), 0).records == 0


@given(uploaded=counts, removed=counts, legacy=st.integers(-(10**6), 10**9))
def test_a_version_2_list_keeps_the_verdict_it_had(
    uploaded: int, removed: int, legacy: int
) -> None:
    # Version 2 warned while Pinterest's net count (uploads less removals) exceeded its own.
    tally = UploadTally(accounted=None, legacy_net=legacy, warned=0, recorded=True)
    outside = Outside(uploaded, accounted_for(tally, uploaded, removed), 0)
    assert outside.records == max(0, (uploaded - removed) - legacy)


# A list's life: this target's uploads (counted before they are sent), uploads from elsewhere,
# mirror runs (each warns while records from elsewhere are outside, and notes how many), and
# explicit runs removing members (each takes what the last warning named as handled).
events = st.lists(
    st.tuples(st.sampled_from(["ours", "theirs", "mirror", "removal"]), st.integers(1, 1000)),
    max_size=40,
)


@given(events=events)
def test_the_warning_tells_the_truth_and_stops_after_the_way_out(
    events: list[tuple[str, int]],
) -> None:
    uploaded = accounted = warned = 0
    theirs_unhandled = 0  # what the user has not yet dealt with, as the model knows it
    theirs_since_warning = 0
    for kind, n in events:
        outside = Outside(uploaded, accounted, warned)
        assert outside.records == theirs_unhandled  # the warning's figure is the truth
        if kind == "ours":
            uploaded += n
            accounted += n
        elif kind == "theirs":
            uploaded += n
            theirs_unhandled += n
            theirs_since_warning += n
        elif kind == "mirror":
            warned = outside.records  # a warning when > 0, none pending when 0
            theirs_since_warning = 0
        else:
            handled = outside.handled_by_removal
            assert handled == theirs_unhandled - theirs_since_warning  # only what was named
            accounted += handled
            theirs_unhandled -= handled
            warned = 0
    # a mirror run (it warns), the way out, and nothing uploaded from elsewhere since: silence
    warned = Outside(uploaded, accounted, warned).records
    accounted += Outside(uploaded, accounted, warned).handled_by_removal
    assert Outside(uploaded, accounted, 0).records == 0
