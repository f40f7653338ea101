"""A stream's members, deduplicated with flat memory: last row wins.

Members arrive as 33-byte records (32-byte digest + action byte 1=add, 0=remove) appended, in
input order, to one of 256 partitions by the digest's first byte (see `rows.py`). Beyond a
bound the partitions are appended to one file each. `finish()` then deduplicates partition by
partition (a dict of one partition at a time, the latest record of a digest winning) and
writes the ADD and REMOVE sets partition after partition. In mirror mode each partition is also
sorted (in the workers, in parallel): the diff keeps that order, and the ledger then records
what Pinterest accepted in key order, several times faster than scattered (10 million members:
9 s instead of 22 s on SQLite). Explicit mode has no ledger and skips the sort. Partitions are
independent, so a process pool can do it.

Only digests ever reach disk, in a private temporary directory removed by `close()`.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import typing as t
from collections.abc import Iterator
from concurrent.futures import Executor
from functools import partial
from itertools import chain
from pathlib import Path

from target_pinterest_audiences.input.rows import PARTITIONS

DIGEST_SIZE = 32
RECORD_SIZE = DIGEST_SIZE + 1
_RECORDS_1024 = struct.Struct(f"{DIGEST_SIZE}sB" * 1024)  # 1024 (digest, action) records


class MemberSet:
    """A finished, deduplicated set of members: 32-byte digests concatenated, in memory or in files.

    Members leave it only as blobs (`bytes` of whole digests), the one shape they travel in from
    here to the ledger and the wire. Each part or file holds one partition (the members whose
    digests share a first byte), in ascending order of that byte.
    """

    def __init__(self, *, parts: t.Sequence[bytes] = (), paths: t.Sequence[Path] = (),
                 count: int | None = None) -> None:  # fmt: skip
        self._parts = [part for part in parts if part]
        self._paths = list(paths)
        self.count = sum(map(len, self._parts)) // DIGEST_SIZE if count is None else count

    @classmethod
    def of(cls, digests: t.Iterable[bytes]) -> MemberSet:
        """The distinct members of ``digests`` (32-byte each), partitioned and sorted: for tests
        and tools."""
        groups: dict[int, dict[bytes, None]] = {}
        for digest in digests:
            groups.setdefault(digest[0], {})[digest] = None
        return cls(parts=[b"".join(sorted(groups[first])) for first in sorted(groups)])

    def blobs(self, size: int) -> Iterator[bytes]:
        """The members in blobs of `size` digests (the last one may hold fewer)."""
        want = DIGEST_SIZE * size
        pending = b""
        for piece in self._pieces(want):
            pending = pending + piece if pending else piece
            while len(pending) >= want:
                yield pending[:want]
                pending = pending[want:]
        if pending:
            yield pending

    def partitions(self) -> Iterator[bytes]:
        """The members one partition at a time: each blob holds the distinct members whose
        digests share one first byte, in ascending order of that byte (the mirror diff's input)."""
        return self._pieces(None)

    def _pieces(self, block: int | None) -> Iterator[bytes]:
        yield from self._parts
        for path in self._paths:
            with path.open("rb") as file:
                while piece := file.read(-1 if block is None else block):
                    yield piece


def dedupe(data: bytes | bytearray, *, ordered: bool = False) -> tuple[bytes, bytes]:
    """(adds, removes) of one partition's records; a digest's last record decides.

    ``ordered``: each side in ascending order of digest (mirror mode's ledger wants it).
    """
    # struct cuts the records into (digest, action) in C and dict(zip(it, it)) keeps the last
    # action of each digest: about 3x faster than slicing in a loop.
    size = len(data) - len(data) % RECORD_SIZE
    whole = size - size % _RECORDS_1024.size
    with memoryview(data) as view:
        fields = chain.from_iterable(_RECORDS_1024.iter_unpack(view[:whole]))
        last: dict[bytes, int] = dict(zip(fields, fields, strict=False))
    for i in range(whole, size, RECORD_SIZE):
        last[bytes(data[i : i + DIGEST_SIZE])] = data[i + DIGEST_SIZE]
    if all(last.values()):  # the common case: nobody removed
        return b"".join(sorted(last) if ordered else last), b""
    adds = [digest for digest, action in last.items() if action]
    removes = [digest for digest, action in last.items() if not action]
    if ordered:
        adds.sort()
        removes.sort()
    return b"".join(adds), b"".join(removes)


def dedupe_partition(
    source: str | None, tail: bytes, adds_path: str, removes_path: str, ordered: bool = False
) -> tuple[int, int]:
    """Deduplicate one partition (its spilled file, then its in-memory tail) into two files.

    Runs in the reader's worker processes when there are some: only the counts come back.
    """
    data = tail
    if source is not None:
        with open(source, "rb") as file:
            data = file.read() + tail
        os.unlink(source)
    adds, removes = dedupe(data, ordered=ordered)
    for path, digests in ((adds_path, adds), (removes_path, removes)):
        if digests:
            with _private_file(Path(path)) as out:
                out.write(digests)
    return len(adds) // DIGEST_SIZE, len(removes) // DIGEST_SIZE


class MemberStore:
    """Partitioned append-only member log of one stream, spilled to disk beyond a bound."""

    def __init__(self, flush_bytes: int = 16 << 20, temp_dir: str | None = None) -> None:
        self.parts: list[bytearray] = [bytearray() for _ in range(PARTITIONS)]
        self.flush_bytes = flush_bytes
        self._temp_parent = temp_dir
        self._temp_dir: Path | None = None
        self._spilled: set[int] = set()

    def spill_if_full(self) -> int:
        """Spill the partitions to disk once they hold more than the bound (call it often);
        return the bytes still held in memory."""
        held = sum(map(len, self.parts))
        if held >= self.flush_bytes:
            self.flush()
            return 0
        return held

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

    def finish(
        self, pool: Executor | None = None, *, ordered: bool = False
    ) -> tuple[MemberSet, MemberSet]:
        """Deduplicated (adds, removes); a member's last row decides which it is in.

        ``ordered``: each partition sorted (see the module's docstring).
        """
        if not self._spilled:
            adds: list[bytes] = []
            removes: list[bytes] = []
            for data in self.parts:
                if data:
                    part_adds, part_removes = dedupe(data, ordered=ordered)
                    adds.append(part_adds)
                    removes.append(part_removes)
                    data.clear()
            return MemberSet(parts=adds), MemberSet(parts=removes)
        directory = self._ensure_temp_dir()
        jobs = [
            (
                str(directory / f"part-{index:03d}.bin") if index in self._spilled else None,
                bytes(self.parts[index]),
                str(directory / f"adds-{index:03d}.bin"),
                str(directory / f"removes-{index:03d}.bin"),
            )
            for index in range(PARTITIONS)
            if index in self._spilled or self.parts[index]
        ]
        for data in self.parts:
            data.clear()
        self._spilled.clear()
        columns = list(zip(*jobs, strict=True))  # never empty: a partition was spilled
        mapper = pool.map if pool is not None else map
        counts = list(mapper(partial(dedupe_partition, ordered=ordered), *columns))
        adds_paths = [Path(job[2]) for job, (adds, _) in zip(jobs, counts, strict=True) if adds]
        removes_paths = [Path(job[3]) for job, (_, rem) in zip(jobs, counts, strict=True) if rem]
        return (
            MemberSet(paths=adds_paths, count=sum(adds for adds, _ in counts)),
            MemberSet(paths=removes_paths, count=sum(removes for _, removes in counts)),
        )

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


def _private_file(path: Path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb", buffering=1 << 20)
