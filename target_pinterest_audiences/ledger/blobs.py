"""Members as blobs: ``bytes`` of ``k * 32`` bytes, ``k`` SHA-256 digests concatenated.

The shape in which members cross module boundaries (store, ledger, sync layer, client); the
ledger splits a blob into digests only where a database driver needs one value per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DIGEST_SIZE = 32


def as_blob(value: object) -> bytes:
    """``value`` as ``bytes`` of whole digests; TypeError / ValueError for anything else."""
    if type(value) is not bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(
                "ledger members must be bytes (blobs of 32-byte digests), "
                f"got {type(value).__name__}"
            )
        value = bytes(value)
    if len(value) % DIGEST_SIZE:
        raise ValueError(
            f"a member blob must hold whole {DIGEST_SIZE}-byte digests, got {len(value)} bytes"
        )
    return value


def split(blob: bytes) -> list[bytes]:
    """The digests of one blob."""
    return [blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)]


def rebatch(blobs: Iterable[object], size: int) -> Iterator[bytes]:
    """The digests of ``blobs`` regrouped into blobs of ``size`` digests (the last may hold fewer).

    Blobs that already have the right size pass through without a copy.
    """
    limit = size * DIGEST_SIZE
    pending = bytearray()
    for item in blobs:
        blob = as_blob(item)
        start = 0
        if pending:
            start = limit - len(pending)
            pending += blob[:start]
            if len(pending) < limit:
                continue
            yield bytes(pending)
            pending.clear()
        while len(blob) - start >= limit:
            yield blob if start == 0 and len(blob) == limit else blob[start : start + limit]
            start += limit
        pending += blob[start:]
    if pending:
        yield bytes(pending)
