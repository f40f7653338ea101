"""Which stream syncs when: groups of one list in input order, the largest work first (pure)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from target_pinterest_audiences.loading.schedule import in_groups

Plan = tuple[int, str, int]  # (input position, list key, calls)

plans = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.integers(min_value=0, max_value=50)), max_size=40
).map(lambda items: [(n, key, size) for n, (key, size) in enumerate(items)])


@given(plans)
def test_every_plan_once_one_list_per_group_in_input_order_largest_first(
    given_plans: list[Plan],
) -> None:
    groups = in_groups(given_plans, key=lambda p: p[1], size=lambda p: p[2])
    flat = [plan for group in groups for plan in group]
    assert sorted(flat) == sorted(given_plans)
    keys = [group[0][1] for group in groups]
    assert len(keys) == len(set(keys))
    for group in groups:
        assert {plan[1] for plan in group} == {group[0][1]}
        assert [plan[0] for plan in group] == sorted(plan[0] for plan in group)
    work = [sum(plan[2] for plan in group) for group in groups]
    assert work == sorted(work, reverse=True)
    # ties keep the input order of their first plan
    for before, after in itertools.pairwise(groups):
        if sum(p[2] for p in before) == sum(p[2] for p in after):
            assert before[0][0] < after[0][0]
