"""One input stream = one Pinterest customer list: collect its members, check it names one list.

Nothing is sent while the stream is read. The whole stream is collected (as member digests,
spilled to disk beyond a bound) and checked first, so that a stream naming a second list
after thousands of rows, or holding an invalid row under ``on_invalid_record=fail``,
sends nothing at all. The per-row work lives in `collect.RowCollector`, shared with the
parallel reader's workers.
"""

from __future__ import annotations

import gzip
import typing as t
from concurrent.futures import Executor
from dataclasses import dataclass, field

import msgspec
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchFileFormat, StorageTarget
from singer_sdk.sinks import BatchSink

from target_pinterest_audiences.collect import RowCollector, SegmentSeen
from target_pinterest_audiences.identifiers import infer_list_type
from target_pinterest_audiences.members import MemberSet, MemberStore
from target_pinterest_audiences.reader import InputError

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

_MISSING = "<missing>"
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
        self.fail_on_invalid = config.get("on_invalid_record", "skip") == "fail"
        # Beyond this many bytes of member records in memory, spill partitions to disk.
        self.members = MemberStore(flush_bytes=int(config.get("_member_buffer_bytes", 16 << 20)))
        self.collector = RowCollector(
            mirror=config.get("sync_mode", "explicit") == "mirror", parts=self.members.parts
        )
        # The hot path calls the collector directly (see AudienceReader.ingesters).
        self.ingest = self.collector.ingest
        self.ingest_record = self.collector.ingest_record
        self._reported_rows = 0
        self._dropped = False

    @property
    def rows(self) -> int:
        return self.collector.rows

    @property
    def invalid_by_reason(self) -> dict[str, int]:
        return dict(self.collector.invalid)

    # The SDK validates each record against the stream's JSON schema and logs the failing
    # record whole. Our own checks are stricter and never quote a value.
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return None

    def process_record(self, record: dict, context: dict) -> None:
        # Reached only through the SDK's per-record path (stream maps configured), which
        # counts the record in the SDK's metric itself.
        self.collector.ingest(record, self.rows + 1)
        self._reported_rows += 1
        self.after_rows()

    def process_batch(self, context: dict) -> None:
        # Drains carry nothing (records are ingested as they come); parquet BATCH files
        # (through the SDK's process_batch_files, which counts them already) carry records.
        for record in context.get("records", ()):
            self.collector.ingest(record, self.rows + 1)
            self._reported_rows += 1
        self.after_rows()

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
                        self.collector.ingest(record, self.rows + 1)
                        if not self.rows & 8191:
                            self.after_rows()
                except (OSError, EOFError) as error:
                    raise InputError(
                        f"BATCH file {path} of stream '{self.stream_name}' cannot be read: "
                        f"{type(error).__name__}: {error}"
                    ) from None
        self.after_rows()

    def absorb(self, block: RowCollector) -> None:
        """Rows of this stream collected by a parallel reader worker, in input order."""
        self.collector.absorb(block)
        self.after_rows()

    def after_rows(self) -> None:
        """Spill members beyond the memory bound; drop them all once the stream is refused."""
        collector = self.collector
        if collector.refused:
            if not self._dropped:
                self._dropped = True
                self.members.close()  # nothing of this stream will be sent
            return
        self.members.spill_if_full()

    def flush_metrics(self) -> None:
        """Report rows read since the last call to the SDK's record counter metric."""
        rows = self.collector.rows
        if rows > self._reported_rows:
            self.record_counter_metric.increment(rows - self._reported_rows)
            self._reported_rows = rows

    def plan(self, pool: Executor | None = None) -> StreamPlan:
        """Check the whole stream, then hand over its deduplicated members."""
        self.flush_metrics()
        collector = self.collector
        segments = collector.segments
        if collector.refused or not segments:
            raise StreamRefused(
                f"Stream '{self.stream_name}' was refused and nothing was sent for it: "
                f"{_why_refused(segments)}. One stream loads one customer list: each row names "
                "it with the same segment_name (and segment_id, if any); split the input into "
                "one stream per list."
            )
        if self.fail_on_invalid and collector.first_invalid is not None:
            row, line, reason = collector.first_invalid
            total = sum(collector.invalid.values())
            raise StreamRefused(
                f"Stream '{self.stream_name}' was refused and nothing was sent for it "
                f"(on_invalid_record=fail): row {row} of stream '{self.stream_name}' (input line "
                f"{line}) is invalid: {reason}; {total} invalid row(s) in all "
                f"({format_reasons(collector.invalid)}). Fix the rows, or set "
                "on_invalid_record=skip to drop invalid rows and load the rest."
            )
        adds, removes = self.members.finish(pool)
        first = segments[0]
        return StreamPlan(
            stream=self.stream_name,
            segment_name=first.name,
            segment_id=first.segment_id,
            list_type=self.config.get("list_type") or infer_list_type(collector.kinds),
            adds=adds,
            removes=removes,
            rows=collector.rows,
            invalid_by_reason=dict(collector.invalid),
            rejected_identifiers=dict(collector.rejected),
            kinds=set(collector.kinds),
        )

    def clean_up(self) -> None:
        self.members.close()
        super().clean_up()


def _why_refused(segments: list[SegmentSeen]) -> str:
    if not segments:
        return "it has no rows naming a customer list"
    first = segments[0]
    if first.problem is not None:
        return f"{first.problem} (row {first.row}, input line {first.line})"
    second = segments[1]
    if second.problem is not None:
        return f"{second.problem} (row {second.row}, input line {second.line})"
    if second.name != first.name:
        what, a, b = "segment_name", first.name, second.name
    else:
        what, a, b = "segment_id", first.segment_id, second.segment_id
    return (
        f"it names two customer lists: {what} {_show(a)} and {_show(b)} "
        f"(first at row {second.row}, input line {second.line})"
    )


def _show(value: str | None) -> str:
    return _MISSING if value is None else repr(value)


def format_reasons(counts: t.Mapping[str, int]) -> str:
    """`invalid_email: 3, missing_identifier: 1`, or `none`: counts by reason for messages."""
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items())) or "none"
