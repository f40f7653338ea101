"""A stream's members, deduplicated with flat memory: last row wins.

Members arrive as 33-byte records (32-byte digest + action byte 1=add, 0=remove) appended, in
input order, to one of 256 partitions by the digest's first byte (see `collect.py`). Beyond a
bound the partitions are appended to one file each. `finish()` then deduplicates partition by
partition (a dict of one partition at a time, the latest record of a digest winning) and
writes the ADD and REMOVE sets partition after partition (unsorted: order of sending does not
matter, and the mirror ledger sorts for itself). Partitions are independent, so a process
pool can do it.

Only digests ever reach disk, in a private temporary directory removed by `close()`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from pathlib import Path

from target_pinterest_audiences.collect import PARTITIONS

DIGEST_SIZE = 32
RECORD_SIZE = DIGEST_SIZE + 1


class MemberSet:
    """A finished, deduplicated set of digests: in memory or in files of 32-byte records."""

    def __init__(self, digests: list[bytes] | None = None, paths: list[Path] | None = None,
                 count: int = 0) -> None:  # fmt: skip
        self._digests = digests
        self._paths = paths or []
        self.count = len(digests) if digests is not None else count

    def chunks(self, size: int) -> Iterator[list[bytes]]:
        """The digests in lists of at most ``size``."""
        if self._digests is not None:
            for start in range(0, len(self._digests), size):
                yield self._digests[start : start + size]
            return
        chunk: list[bytes] = []
        for path in self._paths:
            with path.open("rb") as file:
                while block := file.read(DIGEST_SIZE * size):
                    chunk.extend(block[i : i + DIGEST_SIZE] for i in range(0, len(block), 32))
                    while len(chunk) >= size:
                        yield chunk[:size]
                        chunk = chunk[size:]
        if chunk:
            yield chunk

    def blobs(self, size: int) -> Iterator[bytes]:
        """The digests concatenated, at most ``size`` to a blob (no per-digest objects)."""
        if self._digests is not None:
            for chunk in self.chunks(size):
                yield b"".join(chunk)
            return
        pending = b""
        for path in self._paths:
            with path.open("rb") as file:
                while block := file.read(DIGEST_SIZE * size - len(pending)):
                    pending += block
                    if len(pending) == DIGEST_SIZE * size:
                        yield pending
                        pending = b""
        if pending:
            yield pending

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks(8192):
            yield from chunk


def dedupe(data: bytes | bytearray) -> tuple[bytes, bytes]:
    """(adds, removes) of one partition's records; a digest's last record decides."""
    # dict(zip(...)) keeps the last action of each digest, all in C but for the slicing.
    size = len(data) - len(data) % RECORD_SIZE
    digests = [bytes(data[i : i + DIGEST_SIZE]) for i in range(0, size, RECORD_SIZE)]
    last = dict(zip(digests, data[DIGEST_SIZE::RECORD_SIZE], strict=False))
    if all(last.values()):  # the common case: nobody removed
        return b"".join(last), b""
    adds = b"".join([digest for digest, action in last.items() if action])
    removes = b"".join([digest for digest, action in last.items() if not action])
    return adds, removes


def dedupe_file(path: str, tail: bytes) -> tuple[bytes, bytes]:
    """`dedupe` of a spilled partition file followed by its in-memory tail (for worker pools)."""
    with open(path, "rb") as file:
        return dedupe(file.read() + tail)


class MemberStore:
    """Partitioned append-only member log of one stream, spilled to disk beyond a bound."""

    def __init__(self, flush_bytes: int = 16 << 20, temp_dir: str | None = None) -> None:
        self.parts: list[bytearray] = [bytearray() for _ in range(PARTITIONS)]
        self.flush_bytes = flush_bytes
        self._temp_parent = temp_dir
        self._temp_dir: Path | None = None
        self._spilled: set[int] = set()

    def add(self, digest: bytes, is_add: bool) -> None:
        """One member (the collectors append to `parts` directly; this is for tests and tools)."""
        self.parts[digest[0]] += digest + (b"\x01" if is_add else b"\x00")
        self.spill_if_full()

    def spill_if_full(self) -> None:
        """Spill the partitions to disk once they hold more than the bound (call it often)."""
        if sum(map(len, self.parts)) >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Append every partition's buffer to its file and empty the buffers."""
        directory = self._ensure_temp_dir()
        for index, data in enumerate(self.parts):
            if data:
                fd = os.open(directory / f"part-{index:03d}.bin",
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # fmt: skip
                with os.fdopen(fd, "ab") as file:
                    file.write(data)
                self._spilled.add(index)
                data.clear()

    def finish(self, pool: Executor | None = None) -> tuple[MemberSet, MemberSet]:
        """Deduplicated (adds, removes); a member's last row decides which it is in."""
        if not self._spilled:
            adds: list[bytes] = []
            removes: list[bytes] = []
            for data in self.parts:
                if data:
                    part_adds, part_removes = dedupe(data)
                    adds.extend(_split(part_adds))
                    removes.extend(_split(part_removes))
                    data.clear()
            return MemberSet(adds), MemberSet(removes)
        directory = self._ensure_temp_dir()
        add_path, remove_path = directory / "adds.bin", directory / "removes.bin"
        add_count = remove_count = 0
        jobs = [
            (str(directory / f"part-{index:03d}.bin"), bytes(self.parts[index]))
            if index in self._spilled
            else None
            for index in range(PARTITIONS)
        ]
        results: Iterable[tuple[bytes, bytes]]
        spilled_jobs = [job for job in jobs if job is not None]
        if pool is not None:
            spilled_results = iter(pool.map(dedupe_file, *zip(*spilled_jobs, strict=True)))
        else:
            spilled_results = (dedupe_file(path, tail) for path, tail in spilled_jobs)
        results = (
            next(spilled_results) if job is not None else dedupe(self.parts[index])
            for index, job in enumerate(jobs)
        )
        with _private_file(add_path) as add_file, _private_file(remove_path) as remove_file:
            for part_adds, part_removes in results:
                add_file.write(part_adds)
                remove_file.write(part_removes)
                add_count += len(part_adds) // DIGEST_SIZE
                remove_count += len(part_removes) // DIGEST_SIZE
        for data in self.parts:
            data.clear()
        for index in self._spilled:
            (directory / f"part-{index:03d}.bin").unlink(missing_ok=True)
        self._spilled.clear()
        return (MemberSet(paths=[add_path], count=add_count),
                MemberSet(paths=[remove_path], count=remove_count))  # fmt: skip

    def _ensure_temp_dir(self) -> Path:
        if self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="tpa-members-", dir=self._temp_parent))
        return self._temp_dir

    def close(self) -> None:
        for data in self.parts:
            data.clear()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)]


def _private_file(path: Path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb", buffering=1 << 20)
