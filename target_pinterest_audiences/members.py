"""Collects a stream's members (32-byte digests) with flat memory, last row wins.

Members go into an in-memory dict until it holds ``spill_at`` entries; then the dict is
written, sorted, to a run file of fixed-width records and cleared. ``finish()`` merges the
runs (a later run wins over an earlier one for the same digest, as a later row wins over an
earlier row) into the final ADD and REMOVE sets. Only digests ever reach disk, in a private
temporary directory that is removed when the store is closed.
"""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

DIGEST_SIZE = 32
_RUN_RECORD = DIGEST_SIZE + 1  # digest + action byte (1 add, 0 remove)
_READ_BLOCK = _RUN_RECORD * 8192


class MemberSet:
    """A finished, deduplicated set of digests, kept in memory or in a file of 32-byte records."""

    def __init__(
        self, digests: list[bytes] | None = None, path: Path | None = None, count: int = 0
    ):
        self._digests = digests
        self._path = path
        self.count = len(digests) if digests is not None else count

    def chunks(self, size: int) -> Iterator[list[bytes]]:
        """The digests in lists of at most ``size``, in sorted order."""
        if self._digests is not None:
            for start in range(0, len(self._digests), size):
                yield self._digests[start : start + size]
            return
        if self._path is None:
            return
        with self._path.open("rb") as file:
            while block := file.read(DIGEST_SIZE * size):
                yield [block[i : i + DIGEST_SIZE] for i in range(0, len(block), DIGEST_SIZE)]

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks(8192):
            yield from chunk


class MemberStore:
    """Append-only collector of (digest, is_add) with last-wins deduplication."""

    def __init__(self, spill_at: int = 250_000, temp_dir: str | None = None) -> None:
        self._spill_at = spill_at
        self._temp_dir_parent = temp_dir
        self._temp_dir: Path | None = None
        self._runs: list[Path] = []
        self.pending: dict[bytes, bool] = {}
        self.rows_added = 0  # identifier occurrences seen, duplicates included

    # The sink's hot path writes into ``pending`` directly and calls this when it is full.
    def spill(self) -> None:
        if not self.pending:
            return
        directory = self._ensure_temp_dir()
        path = directory / f"run-{len(self._runs):05d}.bin"
        with _private_file(path) as file:
            file.write(
                b"".join(
                    digest + (b"\x01" if is_add else b"\x00")
                    for digest, is_add in sorted(self.pending.items())
                )
            )
        self._runs.append(path)
        self.pending = {}

    @property
    def spill_at(self) -> int:
        return self._spill_at

    def add(self, digest: bytes, is_add: bool) -> None:
        self.pending[digest] = is_add
        if len(self.pending) >= self._spill_at:
            self.spill()

    def finish(self) -> tuple[MemberSet, MemberSet]:
        """Deduplicated (adds, removes); a member's last row decides which it is in."""
        if not self._runs:
            adds = sorted(d for d, is_add in self.pending.items() if is_add)
            removes = sorted(d for d, is_add in self.pending.items() if not is_add)
            self.pending = {}
            return MemberSet(adds), MemberSet(removes)
        self.spill()
        directory = self._ensure_temp_dir()
        add_path, remove_path = directory / "adds.bin", directory / "removes.bin"
        add_count = remove_count = 0
        with _private_file(add_path) as add_file, _private_file(remove_path) as remove_file:
            for digest, is_add in self._merged():
                if is_add:
                    add_file.write(digest)
                    add_count += 1
                else:
                    remove_file.write(digest)
                    remove_count += 1
        for run in self._runs:
            run.unlink()
        self._runs = []
        return MemberSet(path=add_path, count=add_count), MemberSet(
            path=remove_path, count=remove_count
        )

    def _merged(self) -> Iterator[tuple[bytes, bool]]:
        # Sort key (digest, run index): equal digests come out oldest run first, so keeping
        # the last one of each group means the latest row wins.
        streams = [_read_run(path, index) for index, path in enumerate(self._runs)]
        previous: tuple[bytes, int, bool] | None = None
        for item in heapq.merge(*streams):
            if previous is not None and previous[0] != item[0]:
                yield previous[0], previous[2]
            previous = item
        if previous is not None:
            yield previous[0], previous[2]

    def _ensure_temp_dir(self) -> Path:
        if self._temp_dir is None:
            self._temp_dir = Path(
                tempfile.mkdtemp(prefix="tpa-members-", dir=self._temp_dir_parent)
            )
        return self._temp_dir

    def close(self) -> None:
        self.pending = {}
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _read_run(path: Path, index: int) -> Iterator[tuple[bytes, int, bool]]:
    with path.open("rb") as file:
        while block := file.read(_READ_BLOCK):
            for offset in range(0, len(block), _RUN_RECORD):
                yield block[offset : offset + DIGEST_SIZE], index, block[offset + DIGEST_SIZE] == 1


def _private_file(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb", buffering=1 << 20)
