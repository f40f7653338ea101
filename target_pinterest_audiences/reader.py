"""Reads Singer messages fast, and never echoes an input line.

The SDK's default reader logs a malformed line whole, and puts the whole message into
"missing key" errors; in this domain a line may hold an email address. This reader decodes
with msgspec, keeps the input line number for error messages, and reports bad lines by
number only.
"""

from __future__ import annotations

import sys
import typing as t
from collections import Counter

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerReader

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
        # stream name -> the sink's ingest(record, line); records of these streams skip the
        # SDK's per-record path entirely. Filled by the target when no stream maps are set.
        self.ingesters: dict[str, t.Callable[[t.Any, int], None]] = {}
        # Called every TICK_RECORDS records (progress logs, metrics).
        self.on_tick: t.Callable[[], None] = _nothing

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
        stats: Counter[str] = Counter()
        record_callback = callbacks["RECORD"]
        decode = _decoder.decode
        stream = file_input if file_input is not None else self.default_input
        ingesters = self.ingesters
        records = 0
        line_number = 0
        for line in stream:
            line_number += 1
            try:
                message = decode(line)
            except msgspec.DecodeError:
                self.line_number = line_number
                if not line.strip():
                    continue  # blank lines are harmless
                self.on_malformed(line_number, "is not valid JSON")
                stats["MALFORMED"] += 1
                continue
            # The hot path: a RECORD of a known stream goes straight to its sink.
            if message.__class__ is dict and message.get("type") == "RECORD":
                name = message.get("stream")
                ingest = ingesters.get(name) if name.__class__ is str else None
                if ingest is not None and "record" in message:
                    ingest(message["record"], line_number)
                    records += 1
                    if not records & (TICK_RECORDS - 1):
                        self.on_tick()
                    continue
            self.line_number = line_number
            if type(message) is not dict:
                self.on_malformed(line_number, "is not a JSON object")
                stats["MALFORMED"] += 1
                continue
            message_type = message.get("type")
            if message_type == "RECORD":
                record_callback(message)
            elif (callback := callbacks.get(message_type)) is not None:  # type: ignore[arg-type]
                callback(message)
            else:
                self.on_malformed(
                    line_number, "is not a Singer message (unknown or missing 'type')"
                )
                stats["MALFORMED"] += 1
                continue
            stats[str(message_type)] += 1
        stats["RECORD"] += records
        self.line_number = line_number
        return stats

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


def _nothing() -> None:
    return None


def _raise_malformed(line_number: int, why: str) -> None:
    raise InputError(f"input line {line_number} {why}")
