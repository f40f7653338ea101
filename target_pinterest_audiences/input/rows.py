"""Per-stream row collection: validate each row, hash its identifiers, note which list it names.

A `RowCollector` is pure (no Singer, no I/O) so that the same code runs in the target's own
process and in the parallel reader's worker processes: a worker collects one block of input
into a fresh collector and the target `absorb`s it into the stream's collector, in input order.
Members come out as 33-byte records (digest + action byte) appended to one of 256 partitions
chosen by the digest's first byte; `input.members.MemberStore` deduplicates them (last row wins).
"""

from __future__ import annotations

import dataclasses
import re
import typing as t
from collections import Counter
from dataclasses import dataclass
from hashlib import sha256

import msgspec

from target_pinterest_audiences.input.identifiers import (
    EMAIL_RE,
    FIELD_LIST_TYPE,
    IDENTIFIER_FIELDS,
    MAX_EMAIL_LENGTH,
    Invalid,
    is_list_id,
    member_digest,
    parse_action,
)

PARTITIONS = 256


class AudienceRecord(msgspec.Struct):
    """The fields of the standard audience schema that matter; any others are ignored.

    Typed `Any` so that a wrong-typed value (a number, a list, ...) arrives as it is and is
    counted as an invalid row, never rejected by the decoder for the whole line.
    """

    segment_name: t.Any = None
    segment_id: t.Any = None
    email: t.Any = None
    email_sha256: t.Any = None
    idfa: t.Any = None
    idfa_sha256: t.Any = None
    maid: t.Any = None
    maid_sha256: t.Any = None
    action: t.Any = None


class RecordLine(msgspec.Struct):
    """A Singer message decoded for the RECORD fast path (other types are decoded again)."""

    type: t.Any = None
    stream: t.Any = None
    record: AudienceRecord | None = None


# Raises msgspec.ValidationError when "record" is not an object: such lines take the
# general path, which counts the row as invalid.
decode_record_line = msgspec.json.Decoder(RecordLine).decode
_convert = msgspec.convert
ADD, REMOVE = b"\x01", b"\x00"
_UNSET = object()
_email_fullmatch = EMAIL_RE.fullmatch
# Most addresses are plain ASCII, which this narrower pattern checks faster. Whatever it
# accepts, EMAIL_RE accepts too (a property test holds them to that); the rest go to EMAIL_RE.
PLAIN_EMAIL_RE = re.compile(
    r"[a-z0-9._%+'-]{1,64}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_plain_email_fullmatch = PLAIN_EMAIL_RE.fullmatch


@dataclass(frozen=True)
class ListNamed:
    """A customer list a stream's rows name: (segment_name, segment_id) as normalized, where it
    was first named, and what is wrong with it if anything."""

    name: str | None
    segment_id: str | None
    row: int  # 1-based row within the collector's rows
    line: int
    problem: str | None = None

    def same_list(self, other: ListNamed) -> bool:
        return (self.name, self.segment_id) == (other.name, other.segment_id)


def clean_segment(name: object, segment_id: object) -> tuple[str | None, str | None, str | None]:
    """Normalized (name, id) of a row and, if the row cannot name a list, why."""
    clean_name = name if isinstance(name, str) and name.strip() else None
    clean_id: str | None = None
    problem = None
    if isinstance(segment_id, int) and not isinstance(segment_id, bool) and segment_id >= 0:
        clean_id = str(segment_id)
    elif isinstance(segment_id, str) and is_list_id(segment_id.strip()):
        clean_id = segment_id.strip()
    elif segment_id is not None and segment_id != "":
        problem = "segment_id must be digits, a Pinterest customer list id"
    if clean_name is None and name is not None and name != "" and problem is None:
        problem = "segment_name must be a string"
    if clean_name is None and clean_id is None and problem is None:
        problem = "the row has neither segment_name nor segment_id"
    return clean_name, clean_id, problem


class RowCollector:
    """Collects rows of one stream (or one block of it). The hot path is `ingest`."""

    def __init__(self, *, parts: list[bytearray] | None = None, idfa_upper: bool = False) -> None:
        self.idfa_upper = idfa_upper  # the idfa_case setting: hash IDFAs uppercase
        self.rows = 0
        self.invalid: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.list_types: set[str] = set()
        self.first_invalid: tuple[int, int, str] | None = None  # row, line, reason
        # The first two distinct lists named: two are enough to refuse the stream.
        self.lists_named: list[ListNamed] = []
        self.parts = parts if parts is not None else [bytearray() for _ in range(PARTITIONS)]
        self.refused = False  # set once this collector alone shows the stream names two lists
        self.first_line = 0  # input line of the first row (set by the parallel reader)
        self._last_name: object = _UNSET
        self._last_id: object = _UNSET

    # ---- the hot path ----------------------------------------------------------------------

    def ingest(self, record: object, line: int) -> None:
        """One row as a decoded JSON value (BATCH files, stream maps, odd input lines)."""
        if record.__class__ is not dict:
            self.rows += 1
            if not self.refused:
                self._invalid(Invalid.NOT_AN_OBJECT, line)
            return
        self.ingest_record(_convert(record, AudienceRecord), line)

    def ingest_record(self, record: AudienceRecord, line: int) -> None:
        """One row, decoded straight into the audience fields (the readers' common case)."""
        self.rows += 1
        if self.refused:
            return  # nothing of this stream will be sent: stop collecting
        name = record.segment_name
        segment_id = record.segment_id
        if name != self._last_name or segment_id != self._last_id:
            self._see_list(name, segment_id, line)
            if self.refused:
                return
        action = record.action
        if action is None or action == "add":
            marker = ADD
        elif action == "remove":
            marker = REMOVE
        else:
            parsed = parse_action(action)
            if parsed is None:
                self._invalid(Invalid.INVALID_ACTION, line)
                return
            marker = ADD if parsed else REMOVE
        email = record.email
        if (
            email.__class__ is str
            and record.email_sha256 is None
            and record.maid is None
            and record.idfa is None
            and record.maid_sha256 is None
            and record.idfa_sha256 is None
        ):
            # The common row: one email, no other identifier to look at.
            normalized = email.strip().lower()
            if len(normalized) <= MAX_EMAIL_LENGTH and (
                _plain_email_fullmatch(normalized) or _email_fullmatch(normalized)
            ):
                digest = sha256(normalized.encode()).digest()
                self.parts[digest[0]] += digest + marker
                self.list_types.add("EMAIL")
                return
        self._ingest_identifiers(record, marker, line)

    def _ingest_identifiers(self, record: AudienceRecord, marker: bytes, line: int) -> None:
        """Any mix of identifier fields, each validated; the row is invalid if none is valid."""
        found = 0
        first_problem: Invalid | None = None
        for field_name in IDENTIFIER_FIELDS:
            value = getattr(record, field_name)
            if value is None or value == "":
                continue
            digest = member_digest(field_name, value, idfa_upper=self.idfa_upper)
            if isinstance(digest, bytes):
                self.parts[digest[0]] += digest + marker
                found += 1
                self.list_types.add(FIELD_LIST_TYPE[field_name])
            elif first_problem is None:
                first_problem = digest
            else:
                self.rejected[digest.value] += 1
        if not found:
            self._invalid(first_problem or Invalid.MISSING_IDENTIFIER, line)
        elif first_problem is not None:
            # A row with a valid identifier keeps it; its bad ones are counted, not sent.
            self.rejected[first_problem.value] += 1

    def _invalid(self, reason: Invalid, line: int) -> None:
        self.invalid[reason.value] += 1
        if self.first_invalid is None:
            self.first_invalid = (self.rows, line, reason.value)

    def _see_list(self, name: object, segment_id: object, line: int) -> None:
        self._last_name, self._last_id = name, segment_id
        clean_name, clean_id, problem = clean_segment(name, segment_id)
        self._note_list(ListNamed(clean_name, clean_id, self.rows, line, problem))

    def _note_list(self, seen: ListNamed) -> None:
        """Remember a list named for the first time; two lists (or a bad one) refuse the stream."""
        if any(known.same_list(seen) for known in self.lists_named):
            return
        if len(self.lists_named) < 2:
            self.lists_named.append(seen)
        if len(self.lists_named) > 1 or seen.problem is not None:
            self.refused = True

    # ---- merging a worker's block ---------------------------------------------------------

    def absorb(self, block: RowCollector) -> None:
        """Take a later block of the same stream, collected elsewhere, as if ingested here."""
        offset = self.rows
        self.rows += block.rows
        if self.refused:
            return
        for seen in block.lists_named:
            self._note_list(dataclasses.replace(seen, row=seen.row + offset))
            if self.refused:
                return
        self.invalid.update(block.invalid)
        self.rejected.update(block.rejected)
        self.list_types |= block.list_types
        if self.first_invalid is None and block.first_invalid is not None:
            row, line, reason = block.first_invalid
            self.first_invalid = (row + offset, line, reason)
        parts = self.parts
        shipped = block.__dict__.get("shipped_parts")
        for index, data in shipped.items() if shipped is not None else enumerate(block.parts):
            if data:
                parts[index] += data

    def __getstate__(self) -> dict:
        # Ship only the partitions that hold something: most blocks fill few of the 256.
        state = self.__dict__.copy()
        state["parts"] = {i: bytes(p) for i, p in enumerate(self.parts) if p}
        state["_last_name"] = state["_last_id"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        # A shipped block is only ever absorbed: keep its partitions sparse.
        self.shipped_parts = state.pop("parts")
        self.__dict__.update(state)
        self.parts = []
        self._last_name = self._last_id = _UNSET
