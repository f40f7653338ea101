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
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import msgspec

from target_pinterest_audiences.input.rows import RowCollector, decode_record_line

BLOCK_BYTES = 1 << 20
_decode = msgspec.json.Decoder().decode

# One item of a block's results, in input order: rows collected per stream, or one other
# message with its line number.
BlockItem = (
    tuple[t.Literal["records"], dict[str, RowCollector]] | tuple[t.Literal["message"], int, t.Any]
)


def collect_block(block: bytes, first_line: int, idfa_upper: bool = False) -> list[BlockItem]:
    items: list[BlockItem] = []
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
                    collector = collectors[name] = RowCollector(idfa_upper=idfa_upper)
                    collector.first_line = line
                collector.ingest_record(fast.record, line)
                continue
        try:
            message = _decode(raw)
        except msgspec.DecodeError:
            message = _MALFORMED
        if collectors:
            items.append(("records", collectors))
            collectors = {}
        items.append(("message", line, message))
    if collectors:
        items.append(("records", collectors))
    return items


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


def worker_count(configured: int | None) -> int:
    """Worker processes for reading: one per core, at most two; none on one core."""
    if configured is not None:
        return max(0, configured)
    cores = os.cpu_count() or 1
    return min(2, cores) if cores > 1 else 0


class WorkerPool:
    """The reader's worker processes, started on first use and closed by their one owner.

    Forked, while the target is still single-threaded (reading comes before any sending):
    workers start at once, share the parent's pages, and import nothing. spawn and forkserver
    would re-run the console script in every worker, SDK imports and all. The same workers
    deduplicate the members once the input has ended.
    """

    def __init__(self, workers: int, *, idfa_upper: bool = False) -> None:
        self.workers = workers
        self.idfa_upper = idfa_upper
        self._executor: ProcessPoolExecutor | None = None

    def submit_block(self, block: bytes, first_line: int) -> Future[list[BlockItem]]:
        return self.executor().submit(collect_block, block, first_line, self.idfa_upper)

    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            context = multiprocessing.get_context("fork")
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._executor

    @property
    def started(self) -> Executor | None:
        """The executor if the workers run already (deduplication uses them then), else None."""
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None
