"""Refresh tokens kept in several stores (issue 10.2, 10.3), against the real emulator, which
invalidates the previous refresh token at every continuous refresh as Pinterest may."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from target_pinterest_audiences.pinterest import (
    FileTokenStore,
    PinterestClient,
    RefreshTokenStore,
    RetryPolicy,
    StoredRefreshToken,
    TokenManager,
)
from tests.pinterest_support import ACCT, CLIENT_ID, PinterestEmulator, needs_emulator

pytestmark = needs_emulator

CONFIGURED = "test-refresh-token"
CONFIGURED_SHA = hashlib.sha256(CONFIGURED.encode()).hexdigest()


class SharedFileStore:
    """The store protocol on one JSON file shared by several token managers, as the ledger
    database is shared by runs in several containers. Implements the protocol structurally
    (no base class), as the ledger's store does."""

    def __init__(self, path: Path, events: list[str] | None = None, name: str = "shared") -> None:
        self.path = path
        self.events = events if events is not None else []
        self.name = name
        self.saves = 0

    def load(self) -> StoredRefreshToken | None:
        if not self.path.exists():
            return None
        return StoredRefreshToken(**json.loads(self.path.read_text()))

    def save(self, token: StoredRefreshToken) -> None:
        self.path.write_text(json.dumps(asdict(token)))
        self.saves += 1

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.events.append(f"lock {self.name}")
            yield
            self.events.append(f"unlock {self.name}")

    def describe(self) -> str:
        return f"the {self.name} test store"


class BrokenStore:
    """A store whose back end is down (a database restarted)."""

    def load(self) -> StoredRefreshToken | None:
        raise ConnectionError("down")

    def save(self, token: StoredRefreshToken) -> None:
        raise ConnectionError("down")

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        raise ConnectionError("down")

    def describe(self) -> str:
        return "the broken test store"


def _manager(emu, *stores: RefreshTokenStore, **kwargs) -> TokenManager:
    return TokenManager(
        emu.url,
        refresh_token=CONFIGURED,
        client_id=CLIENT_ID,
        client_secret="test-client-secret",
        stores=list(stores),
        **kwargs,
    )


def _stored(token: str, issued_at: float, sha: str = CONFIGURED_SHA) -> StoredRefreshToken:
    return StoredRefreshToken(
        refresh_token=token, expires_at=None, issued_at=issued_at, configured_sha256=sha
    )


def test_the_protocol_is_structural() -> None:
    store: RefreshTokenStore = SharedFileStore(Path("/nonexistent"))  # mypy checks the shape
    assert store.describe() == "the shared test store"
    assert "pinr_secret" not in repr(_stored("pinr_secret", 1.0))


def test_file_store_keeps_the_token_private_and_ignored_by_git(tmp_path) -> None:
    directory = tmp_path / ".target-pinterest-audiences"
    store = FileTokenStore(directory)
    assert store.load() is None
    token = StoredRefreshToken(
        refresh_token="pinr_x", expires_at=1_900_000_000.0, issued_at=1_800_000_000.5,
        configured_sha256=CONFIGURED_SHA,
    )  # fmt: skip
    store.save(token)
    assert store.load() == token
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert (directory / ".gitignore").read_text().strip() == "*"
    assert "pinr_x" not in store.describe() and "pinr_x" not in repr(store)
    with store.exclusive():
        assert store.lock_path.exists()


def test_file_store_lock_is_exclusive_across_open_files(tmp_path) -> None:
    one, two = FileTokenStore(tmp_path), FileTokenStore(tmp_path)
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        entered.wait()
        with two.exclusive():
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with one.exclusive():
        entered.set()
        thread.join(0.3)  # the second cannot get in while the first holds the lock
        order.append("first")
    thread.join()
    assert order == ["first", "second"]


def test_start_takes_the_newest_token_descending_from_the_configured_one(tmp_path) -> None:
    valid = {CONFIGURED, "pinr_older", "pinr_newest", "pinr_other_app"}
    with PinterestEmulator(refresh_tokens=valid) as emu:
        older = SharedFileStore(tmp_path / "a.json", name="a")
        older.save(_stored("pinr_older", 100.0))
        newest = SharedFileStore(tmp_path / "b.json", name="b")
        newest.save(_stored("pinr_newest", 200.0))
        other = SharedFileStore(tmp_path / "c.json", name="c")  # another configured token's
        other.save(_stored("pinr_other_app", 300.0, sha="0" * 64))
        tokens = _manager(emu, older, other, newest)
        assert tokens.using_stored_refresh_token
        tokens.get()
        # the newest one was exchanged (and so rotated away), the others were not touched
        assert emu.valid_refresh_tokens() >= {CONFIGURED, "pinr_older", "pinr_other_app"}
        assert "pinr_newest" not in emu.valid_refresh_tokens()
        # a user who pastes a new refresh token is not overridden by any store
        fresh = TokenManager(
            emu.url, refresh_token="pinr_pasted", client_id=CLIENT_ID,
            client_secret="test-client-secret", stores=[older, newest, other],
        )  # fmt: skip
        assert not fresh.using_stored_refresh_token


def test_a_refresh_uses_the_token_another_run_saved_meanwhile(tmp_path, caplog) -> None:
    """Two runs in two containers: each its own file store, one shared database store."""
    with PinterestEmulator() as emu:
        shared = SharedFileStore(tmp_path / "shared.json")
        file_a, file_b = FileTokenStore(tmp_path / "a"), FileTokenStore(tmp_path / "b")
        run_a = _manager(emu, file_a, shared)
        run_b = _manager(emu, file_b, shared)  # started before run_a refreshed
        run_a.get()  # CONFIGURED -> T1; CONFIGURED is spent now
        assert CONFIGURED not in emu.valid_refresh_tokens()
        with caplog.at_level(logging.INFO):
            run_b.get()  # must use T1, not the spent CONFIGURED: T1 -> T2
        assert "Another run refreshed the token meanwhile" in caplog.text
        assert "falling back" not in caplog.text
        assert run_a.refresh_count == run_b.refresh_count == 1
        newest = shared.load()
        assert newest is not None and emu.valid_refresh_tokens() == {newest.refresh_token}
        assert file_b.load() == newest
        a_token = file_a.load()
        assert a_token is not None and a_token.issued_at < newest.issued_at
        # the next run in container A finds the newest token in the shared store
        run_a2 = _manager(emu, FileTokenStore(tmp_path / "a"), shared)
        run_a2.get()
        assert run_a2.refresh_count == 1 and "falling back" not in caplog.text
        for record in caplog.records:
            for token in (CONFIGURED, newest.refresh_token, a_token.refresh_token):
                assert token not in record.getMessage()


def test_two_runs_refreshing_at_once_do_not_lock_each_other_out(tmp_path, caplog) -> None:
    with PinterestEmulator() as emu:
        # both token calls are in flight together unless the stores serialize them
        emu.add_fault("latency", path="oauth/token", times=2, seconds=0.3)
        events: list[str] = []
        shared = SharedFileStore(tmp_path / "shared.json", events)
        managers = [
            _manager(emu, FileTokenStore(tmp_path / name), shared, logger=logging.getLogger(name))
            for name in ("a", "b")
        ]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(tokens: TokenManager) -> None:
            start.wait()
            try:
                with PinterestClient(emu.url, ACCT, tokens, retry=RetryPolicy(seed=1)) as client:
                    list(client.iter_customer_lists())
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        with caplog.at_level(logging.INFO):
            threads = [threading.Thread(target=run, args=(m,)) for m in managers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        assert "falling back" not in caplog.text
        assert events == ["lock shared", "unlock shared"] * 2  # one refresh after the other
        assert [m.refresh_count for m in managers] == [1, 1]
        newest = shared.load()
        assert newest is not None and emu.valid_refresh_tokens() == {newest.refresh_token}


def test_stores_are_locked_in_list_order_and_all_get_the_new_token(tmp_path) -> None:
    with PinterestEmulator() as emu:
        events: list[str] = []
        first = SharedFileStore(tmp_path / "1.json", events, "first")
        second = SharedFileStore(tmp_path / "2.json", events, "second")
        tokens = _manager(emu, first, second)
        tokens.get()
        assert events == ["lock first", "lock second", "unlock second", "unlock first"]
        assert first.saves == second.saves == 1 and first.load() == second.load()


def test_a_store_that_is_down_does_not_stop_the_refresh(tmp_path, caplog) -> None:
    with PinterestEmulator() as emu:
        files = FileTokenStore(tmp_path / "files")
        with caplog.at_level(logging.WARNING):
            tokens = _manager(emu, BrokenStore(), files)
            tokens.get()
        assert tokens.refresh_count == 1
        stored = files.load()
        assert stored is not None and stored.refresh_token in emu.valid_refresh_tokens()
        text = caplog.text
        assert "Could not read the refresh token kept in the broken test store" in text
        assert "Could not lock the broken test store" in text
        assert "Could not save the rotated Pinterest refresh token to the broken" in text
        assert "down" not in text.replace("ConnectionError", "")  # type names, not texts


def test_token_dir_is_a_shorthand_for_a_file_store_first(tmp_path) -> None:
    shared = SharedFileStore(tmp_path / "shared.json")
    tokens = TokenManager(
        "http://127.0.0.1:9/v5", refresh_token=CONFIGURED, token_dir=tmp_path / "t",
        stores=[shared],
    )  # fmt: skip
    assert len(tokens.stores) == 2 and tokens.stores[1] is shared
    file_store = tokens.stores[0]
    assert isinstance(file_store, FileTokenStore) and file_store.directory == tmp_path / "t"
