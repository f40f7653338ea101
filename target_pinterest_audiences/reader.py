"""Reads Singer messages fast, and never echoes an input line.

The SDK's default reader logs a malformed line whole, and puts the whole message into
"missing key" errors; in this domain a line may hold an email address. This reader decodes
with msgspec, keeps the input line number for error messages, and reports bad lines by
number only.

Two paths, same semantics. Sequential: each line is decoded here and a RECORD of a known
stream goes straight to its sink's collector. Parallel (binary input of more than one block,
several cores, no stream maps): blocks of lines are collected by worker processes
(`parallel.py`) and their results applied here in input order.
"""

from __future__ import annotations

import io
import sys
import typing as t
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerReader

from target_pinterest_audiences import parallel
from target_pinterest_audiences.collect import AudienceRecord, RowCollector, decode_record_line

_decoder = msgspec.json.Decoder()
TICK_RECORDS = 8192  # a power of two: the check is a bit mask


class InputError(Exception):
    """The input cannot be processed; the message names the line and what to do."""


class AudienceReader(GenericSingerReader[t.Any]):
    """Singer reader over bytes or text lines, with line numbers and no echo of content."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        # Called with (line_number, why) for a line that is not a JSON object with a "type".
        # The target decides whether that is fatal (on_invalid_record=fail) or counted.
        self.on_malformed: t.Callable[[int, str], None] = _raise_malformed
        # stream name -> the sink's ingest_record(record, line) / absorb(block). Records
        # of these streams skip the SDK's per-record path entirely. Filled by the target
        # when no stream maps are set.
        self.ingesters: dict[str, t.Callable[[AudienceRecord, int], None]] = {}
        self.absorbers: dict[str, t.Callable[[RowCollector], None]] = {}
        # Called every TICK_RECORDS records or every block (progress logs, metrics, spilling).
        self.on_tick: t.Callable[[], None] = _nothing
        self.parallel_workers = 0  # 0: sequential only
        self.mirror = False
        self.pool: ProcessPoolExecutor | None = None  # kept for deduplication, then shut down

    @property
    def default_input(self) -> t.IO[t.Any]:
        return sys.stdin.buffer

    def deserialize_json(self, line: t.Any) -> dict:
        try:
            return t.cast(dict, _decoder.decode(line))
        except msgspec.DecodeError:
            msg = f"input line {self.line_number} is not valid JSON"
            raise InputError(msg) from None

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        stream = file_input if file_input is not None else self.default_input
        binary = _binary(stream)
        if binary is not None and self.parallel_workers > 0:
            first = binary.read(parallel.BLOCK_BYTES)
            if len(first) < parallel.BLOCK_BYTES:  # small input: not worth a process pool
                return self._sequential(io.BytesIO(first), callbacks)
            return self._parallel(binary, first, callbacks)
        return self._sequential(binary if binary is not None else stream, callbacks)

    # ---- sequential ------------------------------------------------------------------------

    def _sequential(
        self, stream: t.Iterable[t.Any], callbacks: dict[str, t.Callable[[dict], None]]
    ) -> t.Counter[str]:
        stats: Counter[str] = Counter()
        decode = _decoder.decode
        decode_fast = decode_record_line
        ingesters = self.ingesters
        records = 0
        line_number = 0
        for line in stream:
            line_number += 1
            # The hot path: a RECORD of a known stream goes straight to its sink's collector.
            try:
                fast = decode_fast(line)
                if fast.type == "RECORD" and fast.record is not None:
                    name = fast.stream
                    ingest = ingesters.get(name) if name.__class__ is str else None
                    if ingest is not None:
                        ingest(fast.record, line_number)
                        records += 1
                        if not records & (TICK_RECORDS - 1):
                            self.on_tick()
                        continue
            except msgspec.ValidationError:
                pass  # "record" is not an object: the general path counts the row
            except msgspec.DecodeError:
                self.line_number = line_number
                if not line.strip():
                    continue  # blank lines are harmless
                self.on_malformed(line_number, "is not valid JSON")
                stats["MALFORMED"] += 1
                continue
            self.line_number = line_number
            try:
                message = decode(line)
            except msgspec.DecodeError:  # valid up to where the fast decoder stopped
                self.on_malformed(line_number, "is not valid JSON")
                stats["MALFORMED"] += 1
                continue
            self._dispatch(message, line_number, callbacks, stats)
        stats["RECORD"] += records
        self.line_number = line_number
        return stats

    def _dispatch(
        self,
        message: t.Any,
        line_number: int,
        callbacks: dict[str, t.Callable[[dict], None]],
        stats: Counter[str],
    ) -> None:
        """Any message but a fast-path RECORD, in input order."""
        if type(message) is not dict:
            self.on_malformed(line_number, "is not a JSON object")
            stats["MALFORMED"] += 1
            return
        message_type = message.get("type")
        callback = callbacks.get(message_type) if isinstance(message_type, str) else None
        if callback is None:
            self.on_malformed(line_number, "is not a Singer message (unknown or missing 'type')")
            stats["MALFORMED"] += 1
            return
        callback(message)
        stats[str(message_type)] += 1

    # ---- parallel --------------------------------------------------------------------------

    def _parallel(
        self,
        binary: t.BinaryIO,
        first: bytes,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        stats: Counter[str] = Counter()
        if self.pool is None:
            self.pool = parallel.start_pool(self.parallel_workers)
        pending: deque[Future[list[parallel.Segment]]] = deque()
        window = 2 * self.parallel_workers  # blocks in flight: bounded memory
        try:
            for block, first_line in parallel.blocks(binary, first):
                pending.append(
                    self.pool.submit(parallel.collect_block, block, first_line, self.mirror)
                )
                if len(pending) >= window:
                    self._apply(pending.popleft().result(), callbacks, stats)
            while pending:
                self._apply(pending.popleft().result(), callbacks, stats)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return stats

    def _apply(
        self,
        segments: list[parallel.Segment],
        callbacks: dict[str, t.Callable[[dict], None]],
        stats: Counter[str],
    ) -> None:
        for segment in segments:
            if segment[0] == "records":
                for name, block in segment[1].items():
                    absorb = self.absorbers.get(name)
                    if absorb is None:
                        # Not a stream with a sink yet: the general path raises the error.
                        self.line_number = block.first_line
                        callbacks["RECORD"]({"type": "RECORD", "stream": name, "record": {}})
                        continue
                    absorb(block)
                    stats["RECORD"] += block.rows
                    self.line_number = block.first_line
                continue
            _, line_number, message = segment
            self.line_number = line_number
            if parallel.is_malformed(message):
                self.on_malformed(line_number, "is not valid JSON")
                stats["MALFORMED"] += 1
                continue
            self._dispatch(message, line_number, callbacks, stats)
        self.on_tick()

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def assert_line_requires(  # type: ignore[override]
        self, line_dict: dict, requires: set[str]
    ) -> None:
        missing = requires - set(line_dict)
        if missing:
            msg = (
                f"input line {self.line_number}: a {line_dict.get('type', 'Singer')} message "
                f"is missing {', '.join(sorted(missing))}"
            )
            raise InputError(msg)


def _binary(stream: t.Any) -> t.BinaryIO | None:
    """The binary stream under `stream`, or None for text-only streams (e.g. StringIO)."""
    if isinstance(stream, io.BufferedIOBase | io.RawIOBase):
        return t.cast(t.BinaryIO, stream)
    buffer = getattr(stream, "buffer", None)
    if isinstance(buffer, io.BufferedIOBase | io.RawIOBase):
        return t.cast(t.BinaryIO, buffer)
    return None


def _nothing() -> None:
    return None


def _raise_malformed(line_number: int, why: str) -> None:
    raise InputError(f"input line {line_number} {why}")
