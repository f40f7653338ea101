"""Helpers shared by the tests of the Pinterest client package (`tests/unit/pinterest/`)."""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from target_pinterest_audiences.pinterest import PinterestClient, RetryPolicy, TokenManager

SECRETS = (
    "test-access-token",
    "test-client-secret",
    "test-refresh-token",
)


class FakeClock:
    """Monotonic clock + sleep that only moves when slept on (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


PinterestEmulator: Any
try:  # the emulator is developed in parallel; skip these tests until it exists
    PinterestEmulator = importlib.import_module(
        "target_pinterest_audiences.emulator.server"
    ).PinterestEmulator
except (ImportError, AttributeError):  # pragma: no cover - depends on the emulator
    PinterestEmulator = None

needs_emulator = pytest.mark.skipif(PinterestEmulator is None, reason="emulator not available")

ACCT = "549755885175"
CLIENT_ID = "test-client-id"


@pytest.fixture
def emu():
    server = PinterestEmulator(page_size=2, min_audience_size=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    assert server.spec_violations == [], server.spec_violations


def make_client(
    emu,
    tmp_path,
    *,
    access_token: str | None = "test-access-token",
    refresh: bool = True,
    max_attempts: int = 8,
    max_total_wait: float = 600,
    ad_account_id: str = ACCT,
    logger: logging.Logger | None = None,
    configured_refresh_token: str = "test-refresh-token",
    page_size: int = 2,
    wall_clock: Callable[[], float] | None = None,
    api_url: str | None = None,
):
    clock = FakeClock()
    tokens = TokenManager(
        emu.url,
        access_token=access_token,
        refresh_token=configured_refresh_token if refresh else None,
        client_id=CLIENT_ID if refresh else None,
        client_secret="test-client-secret" if refresh else None,
        token_dir=tmp_path / "tokens",
        logger=logger,
        sleep=clock.sleep,
    )
    policy = RetryPolicy(
        max_attempts=max_attempts,
        max_total_wait=max_total_wait,
        seed=1234,
        sleep=clock.sleep,
        clock=clock,
        **({"wall_clock": wall_clock} if wall_clock is not None else {}),
    )
    client = PinterestClient(
        api_url or emu.url,
        ad_account_id,
        tokens,
        retry=policy,
        read_timeout=10,
        page_size=page_size,
    )
    return client, tokens, clock


def digest(i: int) -> bytes:
    return hashlib.sha256(f"user{i}@example.com".encode()).digest()


def blob(n: int, start: int = 0) -> bytes:
    """A blob of the digests of n made-up members (what the client is given)."""
    return b"".join(digest(i) for i in range(start, start + n))


def hexes(blob: bytes) -> set[str]:
    """The members of a blob as Pinterest holds them (hex)."""
    return {blob[i : i + 32].hex() for i in range(0, len(blob), 32)}


def members_of(emu, list_id: str) -> set[str]:
    return set(emu.members(ACCT, list_id))


RECORDS = sorted(hexes(blob(100)))


def assert_no_secrets(texts: Iterable[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked in: {text[:200]}"
        for record in RECORDS:
            assert record not in text, f"records leaked in: {text[:200]}"
