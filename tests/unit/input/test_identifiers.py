"""Identifier rules: normalization, validation, hashing (unit and property tests)."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.input import identifiers as ids
from target_pinterest_audiences.input.identifiers import Invalid, member_digest

local_part = st.text(
    alphabet=string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=30
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)
emails = st.builds(lambda loc, dom, top: f"{loc}@{dom}.{top}", local_part, label, tld)
uuids = st.uuids().map(str)
spaces = st.text(alphabet=" \t\r\n", max_size=3)


@pytest.mark.parametrize(
    "value",
    [
        "a@b.co",
        "First.Last+tag@Example.COM",
        "  padded@example.org \n",
        "user@sub.domain.example.com",
        "ünïcode@exämple.de",
    ],
)
def test_valid_emails_are_accepted(value: str) -> None:
    assert ids.normalize_email(value) == value.strip().lower()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "plainaddress",
        "a@b",
        "a@@b.com",
        "a@b@c.com",
        "a b@c.com",
        "a@b.c",
        "a@-b.com",
        "a@b-.com",
        "a@.com",
        "@b.com",
        "a@b.123",
        "a\x00@b.com",
        "a,b@c.com",
        "x" * 65 + "@b.com",
        "a@" + "b" * 250 + ".com",
        "a@b..com",
    ],
)
def test_invalid_emails_are_refused(value: str) -> None:
    assert ids.normalize_email(value) is None


@given(email=emails, before=spaces, after=spaces, upper=st.booleans())
def test_email_normalization_trims_lowercases_and_hashes(
    email: str, before: str, after: str, upper: bool
) -> None:
    raw = before + (email.upper() if upper else email) + after
    digest = member_digest("email", raw)
    assert digest == hashlib.sha256(email.lower().encode()).digest()


@given(uuid=uuids, before=spaces, upper=st.booleans(), field=st.sampled_from(["idfa", "maid"]))
def test_device_ids_are_trimmed_lowercased_and_hashed(
    uuid: str, before: str, upper: bool, field: str
) -> None:
    raw = before + (uuid.upper() if upper else uuid) + before
    assert member_digest(field, raw) == hashlib.sha256(uuid.lower().encode()).digest()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        "12345678-1234-1234-1234-12345678901",
        "g2345678-1234-1234-1234-123456789012",
        "1234567812341234123412345678901a",
    ],
)
@pytest.mark.parametrize("field", ["idfa", "maid"])
def test_invalid_device_ids_are_refused(field: str, value: str) -> None:
    assert member_digest(field, value) == ids.FIELD_INVALID[field]


@given(
    data=st.binary(min_size=1, max_size=40),
    upper=st.booleans(),
    field=st.sampled_from(list(ids.HASHED_FIELDS)),
)
def test_prehashed_values_are_taken_as_given(data: bytes, upper: bool, field: str) -> None:
    hexdigest = hashlib.sha256(data).hexdigest()
    value = f" {hexdigest.upper() if upper else hexdigest} "
    assert member_digest(field, value) == bytes.fromhex(hexdigest)


@given(email=emails, field=st.sampled_from(list(ids.HASHED_FIELDS)))
def test_a_raw_value_in_a_sha256_field_is_invalid_never_hashed_again(
    email: str, field: str
) -> None:
    assert member_digest(field, email) == ids.FIELD_INVALID[field]


@pytest.mark.parametrize("value", ["a" * 63, "a" * 65, "z" * 64, hashlib.md5(b"x").hexdigest()])
def test_sha256_fields_need_exactly_64_hex(value: str) -> None:
    assert member_digest("email_sha256", value) is Invalid.INVALID_EMAIL_SHA256


@given(
    value=st.one_of(
        st.integers(),
        st.floats(),
        st.lists(st.text()),
        st.dictionaries(st.text(), st.text()),
        st.booleans(),
    ),
    field=st.sampled_from(list(ids.IDENTIFIER_FIELDS)),
)
def test_non_strings_are_wrong_type(value: object, field: str) -> None:
    assert member_digest(field, value) is Invalid.WRONG_TYPE


@given(text=st.text(max_size=300))
@settings(max_examples=300)
def test_any_text_either_normalizes_to_a_clean_address_or_is_refused(text: str) -> None:
    result = ids.normalize_email(text)
    if result is not None:
        assert result == text.strip().lower()
        assert result.count("@") == 1
        assert "." in result.split("@")[1]
        assert not any(ch.isspace() or ord(ch) < 32 for ch in result)
        assert len(result) <= ids.MAX_EMAIL_LENGTH


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("add", True),
        ("ADD", True),
        (" Remove ", False),
        ("remove", False),
        (None, True),
        ("delete", None),
        ("", None),
        (1, None),
        (["add"], None),
    ],
)
def test_actions(value: object, expected: bool | None) -> None:
    assert ids.parse_action(value) is expected


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ({"EMAIL"}, "EMAIL"),
        ({"MAID"}, "MAID"),
        ({"IDFA"}, "IDFA"),
        ({"MAID", "IDFA"}, "EMAIL"),
        ({"EMAIL", "MAID"}, "EMAIL"),
        (set(), "EMAIL"),
    ],
)
def test_list_type_inference(kinds: set[str], expected: str) -> None:
    assert ids.infer_list_type(kinds) == expected


@given(
    text=st.one_of(
        st.text(max_size=80),
        st.from_regex(
            r"[a-z0-9._%+'-]{1,70}@([a-z0-9-]{0,65}\.){1,3}[a-z0-9-]{1,66}", fullmatch=True
        ),
    )
)
@settings(max_examples=500)
def test_the_fast_ascii_email_check_accepts_nothing_the_full_rule_refuses(text: str) -> None:
    from target_pinterest_audiences.input.rows import PLAIN_EMAIL_RE

    if PLAIN_EMAIL_RE.fullmatch(text):
        assert ids.EMAIL_RE.fullmatch(text)


@given(email=emails)
def test_the_collector_hashes_emails_exactly_as_the_identifier_rules_do(email: str) -> None:
    from target_pinterest_audiences.input.rows import RowCollector

    collector = RowCollector()
    collector.ingest({"segment_name": "L", "email": f" {email.upper()} "}, 1)
    stored = b"".join(collector.parts)
    assert stored == member_digest("email", email) + b"\x01"
