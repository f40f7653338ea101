"""A mirror diff: the stream's members against the ledger's, partition by partition.

Members are grouped by their digest's first byte (256 partitions, as the reader groups them
when it deduplicates). For each partition the back end hands over the list's known members
as one blob (the database concatenates them: one row instead of tens of thousands), and two
sets compare the sides in memory: one partition at a time, about 1.2 MB a side at 10 million
members. The database reads the next partition while this one is compared (a thread: the
database's work releases the GIL). The members to add and to remove go to two unnamed
temporary files, so both sides are fixed when the diff is made and the database is only read,
never written, by a diff. :class:`MembershipDiff` is what callers hold.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import typing as t
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, Protocol

from target_pinterest_audiences.ledger.blobs import DIGEST_SIZE, as_blob, split
from target_pinterest_audiences.ledger.errors import LedgerError

PARTITIONS = 256  # by a digest's first byte

Side = Literal["adds", "removes"]


class DiffPages(Protocol):
    """What a back end's diff hands to :class:`MembershipDiff`."""

    def pages(self, side: Side, chunk: int) -> Iterator[bytes]:
        """The members of one side, in blobs of at most ``chunk`` digests."""
        ...

    def close(self) -> None: ...


class MembershipDiff:
    """Result of :meth:`Ledger.diff`: counts plus the adds and removes, streamed page by page.

    Both sides are fixed when the diff is made, so confirming members while iterating does not
    disturb the iteration; each side comes in ascending order when the desired members did
    (see :func:`merge`). Call :meth:`close` (or use it as a context manager) to drop the
    temporary files.
    """

    def __init__(
        self,
        *,
        desired_count: int,
        known_count: int,
        add_count: int,
        remove_count: int,
        pages: DiffPages | None,
    ) -> None:
        self.desired_count = desired_count
        self.known_count = known_count
        self.add_count = add_count
        self.remove_count = remove_count
        self._pages = pages

    def adds(self, chunk: int) -> Iterator[bytes]:
        """Members to add to Pinterest, in blobs of at most ``chunk`` digests."""
        return self._side("adds", chunk, self.add_count)

    def removes(self, chunk: int) -> Iterator[bytes]:
        """Members to remove from Pinterest, in blobs of at most ``chunk`` digests."""
        return self._side("removes", chunk, self.remove_count)

    def _side(self, side: Side, chunk: int, total: int) -> Iterator[bytes]:
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        if total == 0:
            return
        if self._pages is None:
            raise LedgerError("this membership diff is closed")
        yield from self._pages.pages(side, chunk)

    def close(self) -> None:
        """Drop the temporary files (idempotent)."""
        pages, self._pages = self._pages, None
        if pages is not None:
            pages.close()

    def __enter__(self) -> MembershipDiff:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (
            f"MembershipDiff(desired_count={self.desired_count}, known_count={self.known_count}, "
            f"add_count={self.add_count}, remove_count={self.remove_count})"
        )


class Partitioned:
    """Members already grouped as the diff wants them: each blob holds the distinct members
    whose digests share one first byte, blobs in ascending order of that byte (within a blob,
    best sorted: see :func:`merge`).

    The reader's deduplicated member sets come this way, one partition in memory at a time;
    wrapping them says so (the diff checks it, cheaply, and refuses anything else).
    """

    def __init__(self, blobs: Iterable[bytes]) -> None:
        self.blobs = blobs


def partitions(desired: Iterable[object] | Partitioned) -> Iterator[tuple[int, bytes]]:
    """``(first byte, blob of its distinct members)``, ascending by first byte.

    A :class:`Partitioned` source streams through; any other iterable of blobs (any order,
    duplicates allowed) is grouped and sorted in memory first, which suits tests and small sets.
    """
    if not isinstance(desired, Partitioned):
        groups: dict[int, dict[bytes, None]] = {}
        for item in desired:
            for digest in split(as_blob(item)):
                groups.setdefault(digest[0], {})[digest] = None
        for first in sorted(groups):
            yield first, b"".join(sorted(groups[first]))
        return
    last = -1
    for item in desired.blobs:
        blob = as_blob(item)
        if not blob:
            continue
        first = blob[0]
        if first <= last or blob[::DIGEST_SIZE].count(first) != len(blob) // DIGEST_SIZE:
            raise ValueError(
                "Partitioned members must come one first byte per blob, in ascending order"
            )
        last = first
        yield first, blob


def merge(desired: Iterable[tuple[int, bytes]], known_of: Callable[[int], bytes]) -> MembershipDiff:
    """Diff the desired members against the known ones, one partition (first byte) at a time.

    ``known_of(first)`` is the ledger's members of that partition, as one blob; it is called
    for 0, 1, ... 255 in turn, from one other thread, one call at a time. Within a
    partition both sides are distinct, so two sets decide it; the sides go to two unnamed
    temporary files (gone with the process however it ends). The adds keep the desired
    members' order and the removes come sorted: when the desired partitions are sorted (the
    reader sorts them in mirror mode) both sides are, and the ledger records them in key order,
    several times faster than scattered. Order is for speed only.
    """
    sides = SpilledSides()
    read_ahead = ThreadPoolExecutor(1, thread_name_prefix="tpa-ledger-read")
    try:
        desired_count = known_count = add_count = remove_count = 0
        pending = iter(desired)
        current = next(pending, None)
        next_known: Future[bytes] = read_ahead.submit(known_of, 0)
        for first in range(PARTITIONS):
            wanted = b""
            if current is not None and current[0] == first:
                wanted = current[1]
                current = next(pending, None)
            known = next_known.result()
            if first + 1 < PARTITIONS:
                next_known = read_ahead.submit(known_of, first + 1)
            desired_count += len(wanted) // DIGEST_SIZE
            known_count += len(known) // DIGEST_SIZE
            if not known:  # a new list, or a partition new to it: nothing to compare
                adds, removes = wanted, b""
            else:
                adds, removes = compare(wanted, known)
            add_count += sides.append("adds", adds)
            remove_count += sides.append("removes", removes)
        if current is not None:  # pragma: no cover - partitions() yields bytes 0..255 only
            raise ValueError("members beyond the last partition")
    except BaseException:
        sides.close()
        raise
    finally:
        read_ahead.shutdown(wait=True, cancel_futures=True)  # the reader's connection is ours
    return MembershipDiff(
        desired_count=desired_count,
        known_count=known_count,
        add_count=add_count,
        remove_count=remove_count,
        pages=sides,
    )


def compare(wanted: bytes, known: bytes) -> tuple[bytes, bytes]:
    """(members of ``wanted`` not in ``known``, members of ``known`` not in ``wanted``); each
    blob holds distinct members. The adds keep ``wanted``'s order; the removes are sorted."""
    # One set, not two: the known members left once the wanted ones are taken out are the
    # removes (a tenth of a partition on a daily re-sync: cheap to sort).
    wanted_list, known_set = split(wanted), set(split(known))
    adds = b"".join([member for member in wanted_list if member not in known_set])
    known_set.difference_update(wanted_list)
    return adds, b"".join(sorted(known_set))


class SpilledSides:
    """The two sides of a diff in two unnamed temporary files (private, and never named)."""

    def __init__(self) -> None:
        self._files: dict[Side, t.IO[bytes] | None] = {
            "adds": tempfile.TemporaryFile(prefix="tpa-diff-"),  # noqa: SIM115 - closed by close()
            "removes": tempfile.TemporaryFile(prefix="tpa-diff-"),  # noqa: SIM115
        }

    def append(self, side: Side, blob: bytes) -> int:
        if blob:
            self._file(side).write(blob)
        return len(blob) // DIGEST_SIZE

    def _file(self, side: Side) -> t.IO[bytes]:
        file = self._files[side]
        if file is None:
            raise LedgerError("this membership diff was closed while iterating")
        return file

    def pages(self, side: Side, chunk: int) -> Iterator[bytes]:
        file = self._file(side)
        file.flush()
        size, offset = chunk * DIGEST_SIZE, 0
        # pread: the two sides (and two iterations of one side) never share a file position.
        while page := os.pread(self._file(side).fileno(), size, offset):
            offset += len(page)
            yield page

    def close(self) -> None:
        for side, file in list(self._files.items()):
            self._files[side] = None
            if file is not None:
                file.close()
