"""One input stream = one Pinterest customer list: collect its members, check it names one list.

Nothing is sent while the stream is read. The whole stream is collected (as member digests,
spilled to disk beyond a bound) and checked first, so that a stream naming a second list
after thousands of rows, or holding an invalid row under ``on_invalid_record=fail``,
sends nothing at all.
"""

from __future__ import annotations

import gzip
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from hashlib import sha256

import msgspec
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchFileFormat, StorageTarget
from singer_sdk.sinks import BatchSink

from target_pinterest_audiences.identifiers import (
    EMAIL_RE,
    FIELD_INVALID,
    FIELD_KIND,
    IDENTIFIER_FIELDS,
    MAX_EMAIL_LENGTH,
    Invalid,
    infer_list_type,
    is_list_id,
    member_digest,
    parse_action,
)
from target_pinterest_audiences.members import MemberSet, MemberStore
from target_pinterest_audiences.reader import InputError

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

# Email is by far the most common identifier; its check is inlined on the hot path with the
# same rule as identifiers.normalize_email (a property test checks that they agree).
_email_fullmatch = EMAIL_RE.fullmatch
_MISSING = "<missing>"
_UNSET = object()
_batch_decode = msgspec.json.Decoder().decode


class StreamRefused(Exception):
    """The stream breaks a rule that makes it unsafe to send anything; the message says why."""


@dataclass
class StreamPlan:
    """What one stream asks of Pinterest, once the whole stream is read and checked."""

    stream: str
    segment_name: str | None
    segment_id: str | None
    list_type: str
    adds: MemberSet
    removes: MemberSet
    rows: int
    invalid_by_reason: dict[str, int]
    rejected_identifiers: dict[str, int]
    kinds: set[str] = field(default_factory=set)

    @property
    def records_invalid(self) -> int:
        return sum(self.invalid_by_reason.values())


class AudienceSink(BatchSink):
    """Collects one stream's members; the target syncs them once the input has ended."""

    # Records never queue in the SDK's batches: `ingest` consumes them as they arrive.
    max_size = 2**62

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.config
        self.mirror = config.get("sync_mode", "explicit") == "mirror"
        self.fail_on_invalid = config.get("on_invalid_record", "skip") == "fail"
        # Beyond this many distinct members in memory, spill sorted runs to disk (flat RSS).
        self._spill_at = int(config.get("_member_spill_at", 100_000))
        self.members = MemberStore(spill_at=self._spill_at)
        self.rows = 0
        self.invalid_by_reason: Counter[str] = Counter()
        self.rejected_identifiers: Counter[str] = Counter()
        self.kinds: set[str] = set()
        self.first_failure: str | None = None
        self.segment_conflict: str | None = None
        self._segment_seen = False
        # Raw segment values of the first row; a sentinel so that the first row is checked.
        self._segment_name_raw: object = _UNSET
        self._segment_id_raw: object = _UNSET
        self.segment_name: str | None = None
        self.segment_id: str | None = None
        self._metric_pending = 0

    # The SDK validates each record against the stream's JSON schema and logs the failing
    # record whole. Our own checks below are stricter and never quote a value.
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return None

    def process_record(self, record: dict, context: dict) -> None:
        # Reached only through the SDK's per-record path (stream maps configured).
        self.ingest(record, self.rows + 1, count_metric=False)

    def process_batch(self, context: dict) -> None:
        # Drains carry nothing (records are ingested as they come); parquet BATCH files
        # (through the SDK's process_batch_files, which counts them already) carry records.
        for record in context.get("records", ()):
            self.ingest(record, self.rows + 1, count_metric=False)

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: t.Sequence[str]) -> None:
        """Stream JSONL batch files row by row (gzip recognized by its magic number).

        The SDK's JSONL batcher gzips every file even when the BATCH message says
        ``"compression": "none"``, and its reader would load a whole file into memory and
        quote nothing useful on a bad line; this one names the file and line only.
        """
        if encoding.format != BatchFileFormat.JSONL:
            super().process_batch_files(encoding, files)
            return
        storage = self.batch_config.storage if self.batch_config else None
        for path in files:
            head, tail = StorageTarget.split_url(path)
            file_storage = storage or StorageTarget.from_url(head)
            with file_storage.open(tail, mode="rb") as raw:
                stream: t.IO[bytes] | gzip.GzipFile = raw
                magic = raw.read(2)
                raw.seek(0)
                if magic == b"\x1f\x8b" or encoding.compression == "gzip":
                    stream = gzip.GzipFile(fileobj=raw, mode="rb")
                try:
                    for number, line in enumerate(stream, start=1):
                        try:
                            record = _batch_decode(line)
                        except msgspec.DecodeError:
                            if not line.strip():
                                continue
                            raise InputError(
                                f"BATCH file {path} of stream '{self.stream_name}': line {number} "
                                "is not valid JSON"
                            ) from None
                        self.ingest(record, self.rows + 1)
                except (OSError, EOFError) as error:
                    raise InputError(
                        f"BATCH file {path} of stream '{self.stream_name}' cannot be read: "
                        f"{type(error).__name__}: {error}"
                    ) from None

    def ingest(self, record: object, line: int, *, count_metric: bool = True) -> None:
        """Take one row. The hot path: keep it flat and cheap (measured by scripts/bench.py)."""
        self.rows += 1
        if count_metric:
            self._metric_pending += 1
        if self.segment_conflict is not None:
            return  # refused already; nothing of this stream will be sent
        if type(record) is not dict:
            self._invalid(Invalid.NOT_AN_OBJECT, line)
            return
        get = record.get
        name = get("segment_name")
        segment_id = get("segment_id")
        if name != self._segment_name_raw or segment_id != self._segment_id_raw:
            self._check_segment(name, segment_id, line)
            if self.segment_conflict is not None:
                return
        action = get("action")
        if action is None or self.mirror or action == "add":
            is_add = True
        elif action == "remove":
            is_add = False
        else:
            parsed = parse_action(action)
            if parsed is None:
                self._invalid(Invalid.INVALID_ACTION, line)
                return
            is_add = parsed

        email = get("email")
        if email.__class__ is str and len(record) == (
            (name is not None) + (segment_id is not None) + (action is not None) + 1
        ):
            # The common row: segment, action and one email, nothing else to look at.
            normalized = email.strip().lower()
            if len(normalized) <= MAX_EMAIL_LENGTH and _email_fullmatch(normalized):
                self.members.pending[sha256(normalized.encode()).digest()] = is_add
                self.kinds.add("EMAIL")
                if len(self.members.pending) >= self._spill_at:
                    self.members.spill()
                return
        self._ingest_identifiers(record, is_add, line)

    def _ingest_identifiers(self, record: dict, is_add: bool, line: int) -> None:
        """Any mix of identifier fields, each validated; the row is invalid if none is valid."""
        pending = self.members.pending
        found = 0
        first_problem: Invalid | None = None
        for field_name in IDENTIFIER_FIELDS:
            value = record.get(field_name)
            if value is None or value == "":
                continue
            digest = member_digest(field_name, value)
            if type(digest) is bytes:
                pending[digest] = is_add
                found += 1
                self.kinds.add(FIELD_KIND[field_name])
            else:
                problem = t.cast(Invalid, digest)
                if first_problem is None:
                    first_problem = problem
                else:
                    self.rejected_identifiers[problem.value] += 1
        if not found:
            self._invalid(first_problem or Invalid.MISSING_IDENTIFIER, line)
            return
        if first_problem is not None:
            # A row with a valid identifier keeps it; its bad ones are counted, not sent.
            self.rejected_identifiers[first_problem.value] += 1
        if len(pending) >= self._spill_at:
            self.members.spill()

    def _invalid(self, reason: Invalid, line: int) -> None:
        self.invalid_by_reason[reason.value] += 1
        if self.fail_on_invalid and self.first_failure is None:
            self.first_failure = (
                f"row {self.rows} of stream '{self.stream_name}' (input line {line}) is invalid: "
                f"{reason.value}"
            )

    def _check_segment(self, name: object, segment_id: object, line: int) -> None:
        """Every row names the same list; the first row decides which, the rest must agree."""
        if not self._segment_seen:
            self._segment_seen = True
            self._segment_name_raw, self._segment_id_raw = name, segment_id
            self.segment_name = _clean_name(name)
            self.segment_id = _clean_id(segment_id)
            if name is not None and self.segment_name is None and name != "":
                self._conflict(
                    f"segment_name must be a string (row {self.rows}, input line {line})"
                )
            if segment_id is not None and segment_id != "" and self.segment_id is None:
                self._conflict(
                    f"segment_id must be digits, a Pinterest customer list id "
                    f"(row {self.rows}, input line {line})"
                )
            if self.segment_name is None and self.segment_id is None:
                self._conflict(
                    f"row {self.rows} (input line {line}) has neither segment_name nor segment_id; "
                    "each row must name its customer list"
                )
            return
        new_name, new_id = _clean_name(name), _clean_id(segment_id)
        if new_name != self.segment_name:
            self._conflict(
                f"it names two customer lists: segment_name {_show(self.segment_name)} and "
                f"{_show(new_name)} (first at row {self.rows}, input line {line})"
            )
        elif new_id != self.segment_id:
            self._conflict(
                f"it names two customer lists: segment_id {_show(self.segment_id)} and "
                f"{_show(new_id)} (first at row {self.rows}, input line {line})"
            )
        else:
            # Same list spelled differently (e.g. 643 vs "643"): remember the new spelling too.
            self._segment_name_raw, self._segment_id_raw = name, segment_id

    def _conflict(self, why: str) -> None:
        if self.segment_conflict is None:
            self.segment_conflict = why
            # Nothing of this stream will be sent: stop holding its members.
            self.members.close()

    def flush_metrics(self) -> None:
        """Report rows read since the last call to the SDK's record counter metric."""
        if self._metric_pending:
            self.record_counter_metric.increment(self._metric_pending)
            self._metric_pending = 0

    def plan(self) -> StreamPlan:
        """Check the whole stream, then hand over its deduplicated members."""
        self.flush_metrics()
        if self.segment_conflict is not None:
            raise StreamRefused(
                f"Stream '{self.stream_name}' was refused and nothing was sent for it: "
                f"{self.segment_conflict}. One stream loads one customer list: split the input "
                "into one stream per list."
            )
        if self.first_failure is not None:
            total = sum(self.invalid_by_reason.values())
            raise StreamRefused(
                f"Stream '{self.stream_name}' was refused and nothing was sent for it "
                f"(on_invalid_record=fail): {self.first_failure}; {total} invalid row(s) in all "
                f"({_reasons(self.invalid_by_reason)}). Fix the rows, or set "
                "on_invalid_record=skip to drop invalid rows and load the rest."
            )
        adds, removes = self.members.finish()
        list_type = self.config.get("list_type") or infer_list_type(self.kinds)
        return StreamPlan(
            stream=self.stream_name,
            segment_name=self.segment_name,
            segment_id=self.segment_id,
            list_type=list_type,
            adds=adds,
            removes=removes,
            rows=self.rows,
            invalid_by_reason=dict(self.invalid_by_reason),
            rejected_identifiers=dict(self.rejected_identifiers),
            kinds=set(self.kinds),
        )

    def clean_up(self) -> None:
        self.members.close()
        super().clean_up()


def _clean_name(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def _clean_id(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and is_list_id(value.strip()):
        return value.strip()
    return None


def _show(value: str | None) -> str:
    return _MISSING if value is None else repr(value)


def _reasons(counts: t.Mapping[str, int]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))


__all__ = ["FIELD_INVALID", "AudienceSink", "StreamPlan", "StreamRefused"]
