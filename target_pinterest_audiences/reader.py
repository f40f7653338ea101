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
        line_number = 0
        for line in stream:
            line_number += 1
            self.line_number = line_number
            try:
                message = decode(line)
            except msgspec.DecodeError:
                if not line.strip():
                    continue  # blank lines are harmless
                self.on_malformed(line_number, "is not valid JSON")
                stats["MALFORMED"] += 1
                continue
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


def _raise_malformed(line_number: int, why: str) -> None:
    raise InputError(f"input line {line_number} {why}")
