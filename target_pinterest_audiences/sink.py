"""The SDK's sink for one stream: the way in for rows that take the SDK's own paths.

Most rows never pass here: the reader hands RECORD rows straight to the stream's collector.
The SDK calls this sink for rows transformed by stream maps or flattening (`process_record`)
and for BATCH messages (`process_batch_files`). Both feed the same `StreamInput`; nothing is
sent until the input has ended.
"""

from __future__ import annotations

import gzip
import typing as t

import msgspec
from singer_sdk.sinks import BatchSink

from target_pinterest_audiences.errors import InputError

if t.TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator
    from singer_sdk.target_base import Target

    from target_pinterest_audiences.input.streams import InputStreams, StreamInput

_decode = msgspec.json.Decoder().decode
_GZIP_MAGIC = b"\x1f\x8b"


class AudienceSink(BatchSink):
    """Feeds one stream's rows, arriving the SDK's way, to its `StreamInput`."""

    def __init__(self, target: Target, stream_name: str, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(target, stream_name, *args, **kwargs)
        streams: InputStreams | None = getattr(target, "inputs", None)
        if streams is None:  # pragma: no cover - only TargetPinterestAudiences makes this sink
            raise TypeError("AudienceSink belongs to TargetPinterestAudiences")
        self.input: StreamInput = streams.open(stream_name)

    # The SDK validates each record against the stream's JSON schema and logs the failing
    # record whole. Our own checks are stricter and never quote a value.
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        return None

    def process_record(self, record: dict, context: dict) -> None:
        # Reached only through the SDK's per-record path (stream maps, flattening), which
        # counts the row in its record_count metric itself.
        self.input.ingest(record)
        self.input.sdk_counted += 1
        self.input.after_rows()

    def process_batch(self, context: dict) -> None:
        # Nothing queues in the SDK's batches (rows are taken as they come); parquet BATCH files
        # (through the SDK's process_batch_files) arrive here with their records.
        for record in context.get("records", ()):
            self.input.ingest(record)
            self.input.sdk_counted += 1
        self.input.after_rows()

    def process_batch_files(self, encoding: t.Any, files: t.Sequence[str]) -> None:
        """Stream JSONL batch files row by row (gzip recognized by its magic number).

        The SDK's JSONL batcher gzips every file even when the BATCH message says
        ``"compression": "none"``, and its reader would load a whole file into memory and
        quote nothing useful on a bad line; this one names the file and line only.
        """
        if str(getattr(encoding.format, "value", encoding.format)) != "jsonl":
            super().process_batch_files(encoding, files)  # parquet: the SDK's reader
            return
        import fsspec  # the SDK's own file-system layer; only BATCH runs pay its import

        for path in files:
            try:
                with fsspec.open(path, mode="rb") as raw:
                    magic = raw.read(2)
                    raw.seek(0)
                    compressed = magic == _GZIP_MAGIC or encoding.compression == "gzip"
                    stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
                    self._ingest_lines(path, stream)
            except (OSError, EOFError) as error:
                raise InputError(
                    f"BATCH file {path} of stream '{self.stream_name}' cannot be read: "
                    f"{type(error).__name__}: {error}"
                ) from None

    def _ingest_lines(self, path: str, stream: t.Iterable[bytes]) -> None:
        rows = 0
        for number, line in enumerate(stream, start=1):
            try:
                record = _decode(line)
            except msgspec.DecodeError:
                if not line.strip():
                    continue
                raise InputError(
                    f"BATCH file {path} of stream '{self.stream_name}': line {number} is not "
                    "valid JSON"
                ) from None
            self.input.ingest(record)
            rows += 1
            if not rows & 8191:
                self.input.after_rows()
        self.input.after_rows()
