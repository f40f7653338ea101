"""The member store: last row wins, deduplication, spilling to sorted runs with flat memory."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from target_pinterest_audiences.members import MemberStore

rows = st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=300)


def digest(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


def expected(pairs: list[tuple[int, bool]]) -> tuple[set[bytes], set[bytes]]:
    last: dict[bytes, bool] = {}
    for n, is_add in pairs:
        last[digest(n)] = is_add
    return {d for d, a in last.items() if a}, {d for d, a in last.items() if not a}


@given(pairs=rows, spill_at=st.integers(1, 50))
@settings(max_examples=200, deadline=None)
def test_last_row_wins_with_or_without_spilling(
    pairs: list[tuple[int, bool]], spill_at: int
) -> None:
    store = MemberStore(spill_at=spill_at)
    try:
        for n, is_add in pairs:
            store.add(digest(n), is_add)
        adds, removes = store.finish()
        want_adds, want_removes = expected(pairs)
        got_adds, got_removes = list(adds), list(removes)
        assert set(got_adds) == want_adds and len(got_adds) == len(want_adds) == adds.count
        assert set(got_removes) == want_removes and len(got_removes) == removes.count
        assert got_adds == sorted(got_adds)
        for size in (1, 3, 10_000):
            assert [d for chunk in adds.chunks(size) for d in chunk] == got_adds
    finally:
        store.close()


def test_spilled_runs_hold_only_digests_in_private_files_and_are_removed(tmp_path: Path) -> None:
    store = MemberStore(spill_at=10, temp_dir=str(tmp_path))
    for n in range(35):
        store.add(digest(n), n % 3 != 0)
    files = list(tmp_path.rglob("*.bin"))
    assert len(files) == 3
    for file in files:
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
        assert len(file.read_bytes()) % 33 == 0
    adds, removes = store.finish()
    assert adds.count + removes.count == 35
    store.close()
    assert not any(tmp_path.iterdir())
