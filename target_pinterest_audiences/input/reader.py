"""Reads Singer messages fast, and never echoes an input line.

The SDK's default reader logs a malformed line whole, and puts the whole message into
"missing key" errors; in this domain a line may hold an email address. This reader decodes
with msgspec, keeps the input line number for error messages, and reports bad lines by
number only.

Two paths, same semantics. Sequential: each line is decoded here and a RECORD of a known
stream goes straight to its sink's collector. Parallel (binary input of more than one block,
several cores, no stream maps): blocks of lines are collected by worker processes
(`workers.py`) and their results applied here in input order.

Where rows go, and what a malformed line means, is `InputStreams`'s business: the target routes
the reader to it once (`route_to`).
"""

from __future__ import annotations

import io
import sys
import typing as t
from collections import Counter, deque
from concurrent.futures import Future

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerReader

from target_pinterest_audiences.errors import InputError
from target_pinterest_audiences.input import workers
from target_pinterest_audiences.input.rows import decode_record_line

if t.TYPE_CHECKING:
    from target_pinterest_audiences.input.streams import InputStreams

_decoder = msgspec.json.Decoder()
TICK_RECORDS = 8192  # a power of two: the check is a bit mask


class AudienceReader(GenericSingerReader[t.Any]):
    """Singer reader over bytes or text lines, with line numbers and no echo of content."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.streams: InputStreams | None = None
        self._before_reading: t.Callable[[], None] | None = None
        self._on_failure: t.Callable[[], None] | None = None

    def route_to(
        self,
        streams: InputStreams,
        *,
        before_reading: t.Callable[[], None] | None = None,
        on_failure: t.Callable[[], None] | None = None,
    ) -> None:
        """Send RECORD rows of known streams, ticks and malformed lines to `streams`;
        call `before_reading` once, before the first line is read, and `on_failure` when
        reading stops on an error (the SDK then never reaches the end of input)."""
        self.streams = streams
        self._before_reading = before_reading
        self._on_failure = on_failure

    def _routes(self) -> InputStreams:
        if self.streams is None:
            raise RuntimeError("AudienceReader.route_to() was not called")
        return self.streams

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
        try:
            return self._process_lines(file_input, callbacks)
        except BaseException:
            if self._on_failure is not None:
                self._on_failure()
            raise

    def _process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        if self._before_reading is not None:
            before, self._before_reading = self._before_reading, None
            before()
        stream = file_input if file_input is not None else self.default_input
        binary = _binary(stream)
        if binary is not None and self._routes().pool.workers > 0:
            first = binary.read(workers.BLOCK_BYTES)
            if len(first) < workers.BLOCK_BYTES:  # small input: not worth a process pool
                return self._sequential(io.BytesIO(first), callbacks)
            return self._parallel(binary, first, callbacks)
        return self._sequential(binary if binary is not None else stream, callbacks)

    # ---- sequential ------------------------------------------------------------------------

    def _sequential(
        self, stream: t.Iterable[t.Any], callbacks: dict[str, t.Callable[[dict], None]]
    ) -> t.Counter[str]:
        stats: Counter[str] = Counter()
        routes = self._routes()
        decode = _decoder.decode
        decode_fast = decode_record_line
        ingesters = routes.ingesters  # filled in place as SCHEMA messages arrive
        tick = routes.tick
        malformed = routes.malformed
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
                            tick()
                        continue
            except msgspec.ValidationError:
                pass  # "record" is not an object: the general path counts the row
            except msgspec.DecodeError:
                self.line_number = line_number
                if not line.strip():
                    continue  # blank lines are harmless
                malformed(line_number, "is not valid JSON")
            self.line_number = line_number
            try:
                message = decode(line)
            except msgspec.DecodeError:  # valid up to where the fast decoder stopped
                malformed(line_number, "is not valid JSON")
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
            self._routes().malformed(line_number, "is not a JSON object")
        message_type = message.get("type")
        callback = callbacks.get(message_type) if isinstance(message_type, str) else None
        if callback is None:
            self._routes().malformed(
                line_number, "is not a Singer message (unknown or missing 'type')"
            )
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
        pool = self._routes().pool
        pending: deque[Future[list[workers.BlockItem]]] = deque()
        window = 2 * pool.workers  # blocks in flight: bounded memory
        try:
            for block, first_line in workers.blocks(binary, first):
                pending.append(pool.submit_block(block, first_line))
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
        items: list[workers.BlockItem],
        callbacks: dict[str, t.Callable[[dict], None]],
        stats: Counter[str],
    ) -> None:
        routes = self._routes()
        for item in items:
            if item[0] == "records":
                for name, block in item[1].items():
                    stream = routes.get(name)
                    if stream is None:
                        # Not a stream with a SCHEMA yet: the general path raises the error.
                        self.line_number = block.first_line
                        callbacks["RECORD"]({"type": "RECORD", "stream": name, "record": {}})
                        continue
                    stream.absorb(block)
                    stats["RECORD"] += block.rows
                    self.line_number = block.first_line
                continue
            _, line_number, message = item
            self.line_number = line_number
            if workers.is_malformed(message):
                routes.malformed(line_number, "is not valid JSON")
            self._dispatch(message, line_number, callbacks, stats)
        routes.tick()

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
