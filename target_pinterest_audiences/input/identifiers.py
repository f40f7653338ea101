"""Pure normalization, validation and hashing of audience identifiers.

Everything here is a small pure function over one value, so that the rules can be
property-tested and the per-record hot path stays cheap: one regex match and one
SHA-256 per identifier. Nothing in this module logs or raises with a value in it.
"""

from __future__ import annotations

import enum
import re
from hashlib import sha256
from typing import Final

# Each field of the standard audience schema that carries an identifier, and what it is.
RAW_FIELDS: Final = ("email", "idfa", "maid")
HASHED_FIELDS: Final = ("email_sha256", "idfa_sha256", "maid_sha256")
IDENTIFIER_FIELDS: Final = RAW_FIELDS + HASHED_FIELDS

# Kind of identifier per field, used to infer the Pinterest list type.
FIELD_LIST_TYPE: Final = {
    "email": "EMAIL",
    "email_sha256": "EMAIL",
    "idfa": "IDFA",
    "idfa_sha256": "IDFA",
    "maid": "MAID",
    "maid_sha256": "MAID",
}

MAX_EMAIL_LENGTH: Final = 254  # RFC 5321 path limit

# One '@'; a local part without whitespace, control characters, '@' or ','; a dotted domain of
# labels made of letters (any script), digits and inner hyphens, ending in a non-numeric TLD.
# `\w` admits non-ASCII letters, so internationalized addresses (EAI) are accepted as such.
EMAIL_RE: Final = re.compile(
    r"[^\s@,\x00-\x1f\x7f-\x9f]{1,64}"  # C0, DEL and C1 controls
    r"@(?:(?!-)[\w-]{1,63}(?<!-)\.)+(?!-)(?=[\w-]*[^\W\d_])[\w-]{2,63}(?<!-)",
)
_UUID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,30}")


class Invalid(enum.StrEnum):
    """Why a row (or one identifier of it) was refused. The value is the reported reason."""

    MISSING_IDENTIFIER = "missing_identifier"
    WRONG_TYPE = "wrong_type"
    INVALID_EMAIL = "invalid_email"
    INVALID_IDFA = "invalid_idfa"
    INVALID_MAID = "invalid_maid"
    INVALID_EMAIL_SHA256 = "invalid_email_sha256"
    INVALID_IDFA_SHA256 = "invalid_idfa_sha256"
    INVALID_MAID_SHA256 = "invalid_maid_sha256"
    INVALID_ACTION = "invalid_action"
    NOT_AN_OBJECT = "record_not_an_object"


FIELD_INVALID: Final = {
    "email": Invalid.INVALID_EMAIL,
    "idfa": Invalid.INVALID_IDFA,
    "maid": Invalid.INVALID_MAID,
    "email_sha256": Invalid.INVALID_EMAIL_SHA256,
    "idfa_sha256": Invalid.INVALID_IDFA_SHA256,
    "maid_sha256": Invalid.INVALID_MAID_SHA256,
}


def normalize_email(value: str) -> str | None:
    """Trim and lowercase an email address; None when it is not an address."""
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH or EMAIL_RE.fullmatch(email) is None:
        return None
    return email


def normalize_device_id(value: str, *, upper: bool = False) -> str | None:
    """Trim and lowercase (or uppercase) an IDFA or MAID (GAID); None when it is not an
    8-4-4-4-12 UUID. Pinterest documents lowercase for MAIDs and says nothing of IDFAs, which
    some ad platforms hash uppercase: the `idfa_case` setting chooses for IDFAs."""
    device_id = value.strip().lower()
    if _UUID_RE.fullmatch(device_id) is None:
        return None
    return device_id.upper() if upper else device_id


def normalize_sha256(value: str) -> str | None:
    """Trim and lowercase a pre-hashed identifier; None unless it is exactly 64 hex digits.

    A raw identifier in a ``*_sha256`` field is refused, never hashed again: hashing it
    would silently produce a member nobody can match.
    """
    digest = value.strip().lower()
    if _SHA256_RE.fullmatch(digest) is None:
        return None
    return digest


def hash_identifier(normalized: str) -> bytes:
    """SHA-256 of the normalized identifier's UTF-8 bytes (32 raw bytes; hex on the wire)."""
    return sha256(normalized.encode()).digest()


def member_digest(field: str, value: object, *, idfa_upper: bool = False) -> bytes | Invalid:
    """The 32-byte member digest for one identifier field of a row, or why it is invalid.

    `idfa_upper`: hash IDFAs uppercase (the `idfa_case: upper` setting); MAIDs stay lowercase.
    """
    if not isinstance(value, str):
        return Invalid.WRONG_TYPE
    if field == "email":
        email = normalize_email(value)
        return FIELD_INVALID[field] if email is None else hash_identifier(email)
    if field in ("idfa", "maid"):
        device_id = normalize_device_id(value, upper=idfa_upper and field == "idfa")
        return FIELD_INVALID[field] if device_id is None else hash_identifier(device_id)
    digest = normalize_sha256(value)
    return FIELD_INVALID[field] if digest is None else bytes.fromhex(digest)


def parse_action(value: object) -> bool | None:
    """True for add, False for remove, None when invalid. A missing action means add."""
    if value is None:
        return True
    if isinstance(value, str):
        action = value.strip().lower()
        if action == "add":
            return True
        if action == "remove":
            return False
    return None


def is_list_id(value: str) -> bool:
    """Pinterest customer list ids are digit strings."""
    return _DIGITS_RE.fullmatch(value) is not None


def infer_list_type(list_types: set[str]) -> str:
    """EMAIL, MAID or IDFA when all members are of one kind; EMAIL for a mix or nothing."""
    if len(list_types) == 1:
        return next(iter(list_types))
    return "EMAIL"
