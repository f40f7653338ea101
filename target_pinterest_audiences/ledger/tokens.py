"""The newest Pinterest refresh token, kept in the ledger database (one row per app).

Runs in fresh containers that share one ledger database find there the token Pinterest last
issued (it may invalidate the previous one at every refresh). The store implements the
Pinterest client's ``RefreshTokenStore`` protocol. The token is a secret: it is
never logged, never in a repr, and scrubbed from every error message.
"""

from __future__ import annotations

import typing as t
from contextlib import AbstractContextManager

import sqlalchemy as sa

from target_pinterest_audiences.ledger.schema import REFRESH_TOKENS

# The Pinterest client's own definition: one shape for both stores (a stdlib-only module).
from target_pinterest_audiences.pinterest.token_store import StoredRefreshToken

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger.base import Ledger

LOCK_SCOPE = "refresh-token"


class LedgerTokenStore:
    """The refresh token of app ``key`` (its client_id) in the ledger database."""

    def __init__(self, ledger: Ledger, key: str, *, wait_seconds: float) -> None:
        self._ledger = ledger
        self._key = key
        self._wait_seconds = wait_seconds

    def describe(self) -> str:
        return f"the ledger database {self._ledger.describe()}"

    def load(self) -> StoredRefreshToken | None:
        led = self._ledger
        reading = led._translated("reading the stored refresh token", members=False)
        with reading, led._read() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT refresh_token, expires_at, issued_at, configured_sha256 "  # noqa: S608
                    f"FROM {REFRESH_TOKENS} WHERE key = :k"
                ),
                {"k": self._key},
            ).first()
        if row is None:
            return None
        token, expires_at, issued_at, configured = row
        return StoredRefreshToken(
            refresh_token=str(token),
            expires_at=None if expires_at is None else float(expires_at),
            issued_at=float(issued_at),
            configured_sha256=str(configured),
        )

    def save(self, token: StoredRefreshToken) -> None:
        """Keep ``token`` unless the row already holds a newer one (a higher ``issued_at``)."""
        led = self._ledger
        hide = (token.refresh_token,)
        saving = led._translated("saving the refresh token", hide=hide, members=False)
        with saving, led._write() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {REFRESH_TOKENS} (key, refresh_token, expires_at, issued_at, "  # noqa: S608
                    "configured_sha256) VALUES (:k, :t, :e, :i, :c) ON CONFLICT (key) DO UPDATE "
                    "SET refresh_token = excluded.refresh_token, "
                    "expires_at = excluded.expires_at, issued_at = excluded.issued_at, "
                    "configured_sha256 = excluded.configured_sha256 "
                    f"WHERE excluded.issued_at > {REFRESH_TOKENS}.issued_at"
                ),
                {
                    "k": self._key,
                    "t": token.refresh_token,
                    "e": token.expires_at,
                    "i": float(token.issued_at),
                    "c": token.configured_sha256,
                },
            )

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold the app's refresh lock: one refresh at a time across processes and machines."""
        wait = self._wait_seconds

        def busy(detail: str) -> str:
            return (
                "another run of target-pinterest-audiences is refreshing the Pinterest token "
                f"kept in {self.describe()} (waited {wait:g}s{detail}); run again once it is done"
            )

        return self._ledger._exclusive(LOCK_SCOPE, self._key, wait_seconds=wait, busy=busy)
