"""How Pinterest makes sense of an upload: the records it can use, the members it matches to
its users (deterministically, so that a test can compute an audience's size), and the
statuses and sizes once matching has finished.

Matching is asynchronous: each upload (create or update) starts it again, and until it ends
(``matching_delay`` seconds later) the list is PROCESSING and its audiences keep the figures
of the list's last finished matching (none yet: INITIALIZING, size null).
"""

from __future__ import annotations

import bisect
import hashlib
import re
import sys
from array import array
from collections.abc import Collection
from dataclasses import dataclass

from .model import CustomerList
from .outcome import Json

# What Pinterest accepts as a record: a SHA-256, SHA-1 or MD5 hash, or a plain email.
_HASH = re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32}")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")
_MATCH_SCALE = 16**8


@dataclass(frozen=True)
class Unusable:
    """Why a record cannot be used: an entry of a list's ``exceptions``."""

    code: int
    message: str


NOT_A_RECORD = Unusable(
    1001, "Records that are not a SHA-256, SHA-1 or MD5 hash or an email address."
)
DECLARED_UNUSABLE = Unusable(1002, "Records Pinterest could not use.")


def _match_value(record: str) -> int:
    """The number the match rule compares: a hash's first 8 hex digits; for an email (or a
    member an old state file kept that is neither), those of its SHA-256."""
    if "@" not in record:
        try:
            return int(record[:8], 16)
        except ValueError:
            pass
    return int(hashlib.sha256(record.strip().lower().encode("utf-8")).hexdigest()[:8], 16)


def count_matched(records: Collection[str], fraction: float) -> int:
    threshold = fraction * _MATCH_SCALE
    try:  # the usual case, all hashes: the prefixes as big-endian uint32s, counted in C
        values = array("I", bytes.fromhex("".join([r[:8] for r in records])))
    except ValueError:  # an email, or a member an old state file kept
        return sum(1 for r in records if _match_value(r) < threshold)
    if values.itemsize != 4 or len(values) != len(records):  # pragma: no cover - odd platform
        return sum(1 for r in records if _match_value(r) < threshold)
    if sys.byteorder == "little":
        values.byteswap()
    return bisect.bisect_left(sorted(values), threshold)


_HEX_AND_COMMAS = b"0123456789abcdefABCDEF,"


def _all_hashes(records: list[str]) -> bool:
    """Fast path for the usual upload: every record a hash (checked in C, not per record)."""
    if not {len(r) for r in records} <= {32, 40, 64}:
        return False
    try:
        joined = ",".join(records).encode("ascii")
    except UnicodeEncodeError:
        return False
    return not joined.translate(None, _HEX_AND_COMMAS)


def sort_records(records: list[str], declared: dict[str, Unusable]) -> tuple[set[str], Json]:
    """(the usable records, the ``exceptions`` of the others) of one upload.

    ``exceptions`` is ``{"<code>": {"code", "message", "count"}}``: never a record's value.
    """
    if not declared and _all_hashes(records):
        return set(records), {}
    usable: set[str] = set()
    counts: dict[Unusable, int] = {}
    for record in records:
        reason = declared.get(record) if declared else None
        if reason is None and not (_HASH.fullmatch(record) or _EMAIL.fullmatch(record)):
            reason = NOT_A_RECORD
        if reason is None:
            usable.add(record)
        else:
            counts[reason] = counts.get(reason, 0) + 1
    exceptions: Json = {}
    for reason, count in counts.items():
        merge_exceptions(exceptions, {str(reason.code): _entry(reason, count)})
    return usable, exceptions


def _entry(reason: Unusable, count: int) -> Json:
    return {"code": reason.code, "message": reason.message, "count": count}


def merge_exceptions(into: Json, more: Json) -> None:
    for key, entry in more.items():
        if key in into:
            into[key] = {**into[key], "count": into[key]["count"] + entry["count"]}
        else:
            into[key] = dict(entry)


# ---- applying an upload to a list


def add_members(c: CustomerList, records: set[str], fraction: float) -> None:
    fresh = records - c.members
    c.matched += count_matched(fresh, fraction)
    c.members |= fresh


def remove_members(c: CustomerList, records: set[str], fraction: float) -> None:
    gone = records & c.members
    c.matched -= count_matched(gone, fraction)
    c.members -= gone


def start_matching(c: CustomerList, *, now: float, delay: float) -> None:
    """An upload arrives: call before changing the members.

    ``processing_until`` 0 means no matching is pending and ``last_matched`` is current
    (None for a list just created); otherwise, once it is past, ``matched`` is the figure.
    """
    if 0 < c.processing_until <= now:  # the previous matching has finished: its figure stays
        c.last_matched = c.matched
    c.processing_until = now + delay


def finish_matching(c: CustomerList) -> None:
    """Matching of the list ends now (for seeded lists and impatient tests)."""
    c.last_matched = c.matched
    c.processing_until = 0.0


def matched_as_of_last_matching(c: CustomerList, now: float) -> int | None:
    """Matched members as of the list's last finished matching (None: none finished yet)."""
    return c.matched if now >= c.processing_until else c.last_matched


def list_status(c: CustomerList, *, now: float, minimum: int) -> str:
    if now < c.processing_until:
        return "PROCESSING"
    return "TOO_SMALL" if c.matched < minimum else "READY"


def audience_figures(c: CustomerList | None, *, now: float, minimum: int) -> tuple[str, int | None]:
    """(status, size) of a CUSTOMER_LIST audience on list ``c``."""
    if c is None:
        return "TOO_SMALL", 0
    matched = matched_as_of_last_matching(c, now)
    if matched is None:
        return "INITIALIZING", None
    return ("TOO_SMALL" if matched < minimum else "READY"), matched


# Pinterest users per country, as the emulator pretends (a lookalike's size is a share of them).
COUNTRY_USERS = {"US": 90_000_000, "CA": 10_000_000, "GB": 15_000_000}
OTHER_COUNTRY_USERS = 10_000_000


def lookalike_figures(
    rule: dict[str, object], created: float, *, now: float, delay: float
) -> tuple[str, int | None]:
    """(status, size) of an ACTALIKE audience: INITIALIZING, size null, for ``delay`` seconds
    after its creation (whether Pinterest fills the size at once is not known), then READY
    with ``percentage`` percent of the country's users (``COUNTRY_USERS``; 10,000,000 for a
    country the emulator was told to offer besides those)."""
    if now < created + delay:
        return "INITIALIZING", None
    users = COUNTRY_USERS.get(str(rule.get("country")), OTHER_COUNTRY_USERS)
    percentage = rule.get("percentage")
    share = int(percentage) if isinstance(percentage, int | str) else 0
    return "READY", users * share // 100
