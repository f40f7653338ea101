"""OAuth tokens the emulator accepts: access tokens (with calls made) and refresh tokens."""

from __future__ import annotations

import secrets

from .outcome import Json


class Tokens:
    """Valid access tokens (each with the successful calls made with it) and refresh tokens
    (each with its expiry, unix seconds).

    Not thread-safe on its own: the emulator calls it under its lock.
    """

    def __init__(self, initial_access: set[str], initial_refresh: set[str]) -> None:
        self.initial_access = set(initial_access)
        self.initial_refresh = set(initial_refresh)
        self.access: dict[str, int] = {}  # token -> successful calls made with it
        self.refresh: dict[str, int] = {}  # token -> expires_at (unix seconds)

    def reset(self, *, refresh_expires_at: int) -> None:
        """Back to the initial tokens only."""
        self.access = dict.fromkeys(self.initial_access, 0)
        self.refresh = dict.fromkeys(self.initial_refresh, refresh_expires_at)

    def restart_counts(self) -> None:
        for token in self.access:
            self.access[token] = 0

    def valid_access(self) -> set[str]:
        return set(self.access)

    def valid_refresh(self, now: int) -> set[str]:
        return {t for t, exp in self.refresh.items() if exp > now}

    def add_access(self, token: str) -> None:
        self.access[token] = 0

    def revoke_access(self, token: str) -> None:
        self.access.pop(token, None)

    def count_call(self, token: str, lifetime: int | None) -> None:
        """One successful call made with ``token``; it expires after ``lifetime`` of them."""
        self.access[token] += 1
        if lifetime is not None and self.access[token] >= lifetime:
            del self.access[token]

    def issue_access(self) -> str:
        token = "pina_" + secrets.token_urlsafe(24)
        self.access[token] = 0
        return token

    def refresh_expiry(self, token: str) -> int | None:
        return self.refresh.get(token)

    def rotate_refresh(self, old: str, *, expires_at: int) -> str:
        """A new refresh token replaces ``old`` (continuous refresh)."""
        new = "pinr_" + secrets.token_urlsafe(24)
        del self.refresh[old]
        self.refresh[new] = expires_at
        return new

    def dump(self) -> Json:
        return {"access_tokens": dict(self.access), "refresh_tokens": dict(self.refresh)}

    def load(self, data: Json) -> None:
        self.access = {str(k): int(v) for k, v in data.get("access_tokens", {}).items()}
        self.refresh = {str(k): int(v) for k, v in data.get("refresh_tokens", {}).items()}
