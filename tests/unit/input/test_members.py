"""The member store: last row wins, deduplication, spilling partitions with flat memory."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.input.members import MemberSet, MemberStore
from target_pinterest_audiences.input.rows import RowCollector

rows = st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=300)


def digest(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def append(store: MemberStore, member: bytes, is_add: bool) -> None:
    """What the row collectors do with a member: append its record to its partition."""
    store.parts[member[0]] += member + (b"\x01" if is_add else b"\x00")
    store.spill_if_full()


def members_of(members: MemberSet) -> list[bytes]:
    blob = b"".join(members.blobs(1000))
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def expected(pairs: list[tuple[int, bool]]) -> tuple[set[bytes], set[bytes]]:
    last: dict[bytes, bool] = {}
    for n, is_add in pairs:
        last[digest(n)] = is_add
    return {d for d, a in last.items() if a}, {d for d, a in last.items() if not a}


@given(pairs=rows, flush_every=st.integers(33, 2000), pooled=st.booleans(), ordered=st.booleans())
@settings(max_examples=150, deadline=None)
def test_last_row_wins_with_or_without_spilling(
    pairs: list[tuple[int, bool]], flush_every: int, pooled: bool, ordered: bool
) -> None:
    store = MemberStore(flush_bytes=flush_every)
    try:
        for n, is_add in pairs:
            append(store, digest(n), is_add)
        with ThreadPoolExecutor(2) as pool:
            adds, removes = store.finish(pool if pooled else None, ordered=ordered)
        want_adds, want_removes = expected(pairs)
        got_adds, got_removes = members_of(adds), members_of(removes)
        assert set(got_adds) == want_adds and len(got_adds) == len(want_adds) == adds.count
        assert set(got_removes) == want_removes and len(got_removes) == removes.count
        if ordered:  # mirror mode: partitions ascend and each is sorted, so all is sorted
            assert got_adds == sorted(got_adds) and got_removes == sorted(got_removes)
        for size in (1, 3, 10_000):
            blobs = list(adds.blobs(size))
            assert b"".join(blobs) == b"".join(got_adds)
            assert all(len(blob) == 32 * size for blob in blobs[:-1])
            assert all(0 < len(blob) <= 32 * size for blob in blobs)
    finally:
        store.close()


@given(pairs=rows, cut=st.integers(0, 300))
@settings(max_examples=100, deadline=None)
def test_blocks_collected_elsewhere_and_absorbed_in_order_equal_one_pass(
    pairs: list[tuple[int, bool]], cut: int
) -> None:
    records = [
        {"segment_name": "L", "email": f"user{n}@example.com", "action": "add" if a else "remove"}
        for n, a in pairs
    ]
    whole = RowCollector()
    for line, record in enumerate(records, 1):
        whole.ingest(record, line)
    first, second = RowCollector(), RowCollector()
    for line, record in enumerate(records[:cut], 1):
        first.ingest(record, line)
    for line, record in enumerate(records[cut:], cut + 1):
        second.ingest(record, line)
    first.absorb(pickle.loads(pickle.dumps(second)))  # as shipped from a worker process
    assert first.rows == whole.rows
    assert [bytes(p) for p in first.parts] == [bytes(p) for p in whole.parts]
    assert first.lists_named == whole.lists_named


def test_a_second_list_in_a_later_block_is_seen_with_its_row_number() -> None:
    first, second = RowCollector(), RowCollector()
    for line in range(1, 4):
        first.ingest({"segment_name": "A", "email": f"a{line}@example.com"}, line)
    second.ingest({"segment_name": "A", "email": "x@example.com"}, 10)
    second.ingest({"segment_name": "B", "email": "y@example.com"}, 11)
    first.absorb(pickle.loads(pickle.dumps(second)))
    assert first.refused
    assert [(s.name, s.row, s.line) for s in first.lists_named] == [("A", 1, 1), ("B", 5, 11)]


def test_spilled_partitions_hold_only_digests_in_private_files_and_are_removed(
    tmp_path: Path,
) -> None:
    store = MemberStore(flush_bytes=33 * 10, temp_dir=str(tmp_path))
    for n in range(35):
        append(store, digest(n), n % 3 != 0)
    files = list(tmp_path.rglob("*.bin"))
    assert files
    for file in files:
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
        assert len(file.read_bytes()) % 33 == 0
    adds, removes = store.finish()
    assert adds.count + removes.count == 35
    store.close()
    assert not any(tmp_path.iterdir())
