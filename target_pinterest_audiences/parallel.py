"""The parallel reader's worker side: collect one block of input lines in another process.

The target's process reads the input in blocks of whole lines and hands them, in order, to a
small process pool; each worker decodes its block, collects the RECORD rows per stream into
fresh `RowCollector`s, and returns them with every other message in input order. The target
then applies the results in order, so SCHEMA, STATE and error semantics are exactly those of
the sequential path, while decoding, validation and hashing use every core.
Workers are forked before the target starts any thread, and touch only this module.
"""

from __future__ import annotations

import multiprocessing
import os
import typing as t
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import msgspec

from target_pinterest_audiences.collect import RowCollector, decode_record_line

BLOCK_BYTES = 1 << 20
_decode = msgspec.json.Decoder().decode

# A block's results, in input order: collected rows, or one other message with its line.
Segment = (
    tuple[t.Literal["records"], dict[str, RowCollector]] | tuple[t.Literal["message"], int, t.Any]
)


def collect_block(block: bytes, first_line: int, mirror: bool) -> list[Segment]:
    segments: list[Segment] = []
    collectors: dict[str, RowCollector] = {}
    line = first_line - 1
    for raw in block.split(b"\n"):
        line += 1
        try:
            fast = decode_record_line(raw)
        except msgspec.ValidationError:
            fast = None  # "record" is not an object: the general path counts the row
        except msgspec.DecodeError:
            if not raw.strip():
                continue  # blank lines are harmless
            fast = None
        if fast is not None and fast.type == "RECORD" and fast.record is not None:
            name = fast.stream
            if name.__class__ is str:
                collector = collectors.get(name)
                if collector is None:
                    collector = collectors[name] = RowCollector(mirror=mirror)
                    collector.first_line = line
                collector.ingest_record(fast.record, line)
                continue
        try:
            message = _decode(raw)
        except msgspec.DecodeError:
            message = _MALFORMED
        if collectors:
            segments.append(("records", collectors))
            collectors = {}
        segments.append(("message", line, message))
    if collectors:
        segments.append(("records", collectors))
    return segments


class _Malformed:
    """Stands for a line that is not JSON (its content never leaves the worker)."""

    def __reduce__(self) -> str:
        return "_MALFORMED"


_MALFORMED = _Malformed()


def is_malformed(message: object) -> bool:
    return isinstance(message, _Malformed)


def blocks(stream: t.BinaryIO, first: bytes) -> Iterator[tuple[bytes, int]]:
    """Whole-line blocks of about BLOCK_BYTES with the input line number each starts at."""
    leftover = b""
    line = 1
    chunk = first
    while chunk:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            leftover += chunk
        else:
            block = leftover + chunk[: cut + 1]
            leftover = chunk[cut + 1 :]
            yield block, line
            line += block.count(b"\n")
        chunk = stream.read(BLOCK_BYTES)
    if leftover:
        yield leftover, line


def worker_count(configured: object) -> int:
    if configured is not None:
        return max(0, int(configured))  # type: ignore[call-overload]
    return min(2, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0


def start_pool(workers: int) -> ProcessPoolExecutor:
    # fork, while the target is still single-threaded (reading comes before any sending):
    # workers start at once, share the parent's pages, and import nothing. spawn and
    # forkserver would re-run the console script in every worker, SDK imports and all.
    context = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)
