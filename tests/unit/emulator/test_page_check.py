"""The page answers' fast check gives the plain check's verdict, error for error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.emulator.spec import PageChecker, SchemaChecker, Spec

SPEC = Spec()


def checkers(operation_id: str) -> tuple[PageChecker, SchemaChecker]:
    """(the checker the emulator uses, a plain one of the whole schema) of a list call."""
    op = next(o for o in SPEC.operations if o.operation_id == operation_id)
    schema = SPEC.document["paths"][op.template]["get"]["responses"]["200"]["content"]
    fast = op.response_checker(200)
    assert isinstance(fast, PageChecker)
    return fast, SchemaChecker(schema["application/json"]["schema"], SPEC)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "549755885175", "12a", "READY", "TOO_SMALL", "LOST", "customerlist"]),
    st.text(max_size=5),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["customer_list_id", "country", "seed_id", "x"]), inner),
    ),
    max_leaves=6,
)
NAMES = st.sampled_from(
    [
        "id",
        "ad_account_id",
        "name",
        "status",
        "type",
        "size",
        "rule",
        "num_batches",
        "created_time",
        "created_timestamp",
        "exceptions",
        "description",
        "something_else",
    ]
)
RULES = st.dictionaries(
    st.sampled_from(["customer_list_id", "country", "percentage", "seed_id", "ad_id", "x"]),
    VALUES,
    max_size=3,
)
ITEMS = st.one_of(
    st.dictionaries(NAMES, VALUES, max_size=8),
    st.fixed_dictionaries({"rule": RULES}, optional={"id": SCALARS, "status": SCALARS}),
    SCALARS,
    st.lists(SCALARS),
)
PAGES = st.one_of(
    st.fixed_dictionaries(
        {"items": st.lists(ITEMS, max_size=4)},
        optional={"bookmark": st.one_of(st.none(), st.text(max_size=3), st.integers())},
    ),
    st.dictionaries(st.sampled_from(["items", "bookmark"]), VALUES),
    SCALARS,
)


@pytest.mark.parametrize("operation_id", ["customer_lists/list", "audiences/list"])
@settings(max_examples=400, deadline=None)
@given(page=PAGES)
def test_the_fast_page_check_says_what_the_plain_check_says(operation_id: str, page: Any) -> None:
    fast, plain = checkers(operation_id)
    want = sorted(plain.errors(page, "response 200"))
    assert sorted(fast.errors(page, "response 200")) == want
    assert sorted(fast.errors(page, "response 200")) == want  # again, from remembered verdicts


def test_a_bad_value_deep_in_an_audience_rule_is_reported_where_it_is() -> None:
    fast, plain = checkers("audiences/list")
    page = {"items": [{"id": "1", "rule": {"customer_list_id": "12a", "ad_id": ["3", 4]}}]}
    want = sorted(plain.errors(page, "response 200"))
    assert len(want) == 2
    assert any(".items[0].rule.customer_list_id" in e for e in want)
    assert any(".items[0].rule.ad_id[1]" in e for e in want)
    assert sorted(fast.errors(page, "response 200")) == want
