"""OAuth tokens the emulator accepts: access tokens (with their scopes, the ad accounts they
may use and the calls made with them) and refresh tokens (with their scopes, ad accounts and
expiry). A token's ad accounts are its own when it was given some (``POST /_emulator/tokens``
with ``ad_accounts``), else the ``ad_accounts`` option's; a refreshed token has those of its
refresh token."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from .outcome import Json


def parse_scopes(text: str) -> frozenset[str]:
    """``"ads:read,ads:write"`` (commas or spaces) as a set."""
    return frozenset(s for s in re.split(r"[,\s]+", text) if s)


def format_scopes(scopes: frozenset[str]) -> str:
    return ",".join(sorted(scopes))


AdAccounts = frozenset[str] | None  # None: the ad accounts of the `ad_accounts` option


@dataclass
class AccessToken:
    scopes: frozenset[str]
    calls: int = 0  # successful calls made with it
    ad_accounts: AdAccounts = None


@dataclass
class RefreshToken:
    scopes: frozenset[str]
    expires_at: int  # unix seconds
    ad_accounts: AdAccounts = None


class Tokens:
    """The valid tokens. Not thread-safe on its own: the emulator calls it under its lock."""

    def __init__(self, initial_access: set[str], initial_refresh: set[str]) -> None:
        self.initial_access = set(initial_access)
        self.initial_refresh = set(initial_refresh)
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.issued: list[str] = []  # every token the token call handed out, for leak checks

    def reset(self, *, scopes: frozenset[str], refresh_expires_at: int) -> None:
        """Back to the initial tokens only, with ``scopes``."""
        self.access = {t: AccessToken(scopes) for t in self.initial_access}
        self.refresh = {t: RefreshToken(scopes, refresh_expires_at) for t in self.initial_refresh}
        self.issued.clear()

    def regrant_initial(self, scopes: frozenset[str]) -> None:
        """The initial tokens that are still valid now have ``scopes``."""
        for token in self.initial_access & set(self.access):
            self.access[token].scopes = scopes
        for token in self.initial_refresh & set(self.refresh):
            self.refresh[token].scopes = scopes

    def restart_counts(self) -> None:
        for token in self.access.values():
            token.calls = 0

    def valid_access(self) -> set[str]:
        return set(self.access)

    def valid_refresh(self, now: int) -> set[str]:
        return {t for t, r in self.refresh.items() if r.expires_at > now}

    def add_access(
        self, token: str, scopes: frozenset[str], *, ad_accounts: AdAccounts = None
    ) -> None:
        self.access[token] = AccessToken(scopes, ad_accounts=ad_accounts)

    def add_refresh(
        self,
        token: str,
        scopes: frozenset[str],
        *,
        expires_at: int,
        ad_accounts: AdAccounts = None,
    ) -> None:
        self.refresh[token] = RefreshToken(scopes, expires_at, ad_accounts)

    def revoke_access(self, token: str) -> None:
        self.access.pop(token, None)

    def missing_scopes(self, token: str, needed: tuple[str, ...]) -> list[str]:
        return [s for s in needed if s not in self.access[token].scopes]

    def may_use(self, token: str, ad_account: str, default: tuple[str, ...]) -> bool:
        """Whether ``token`` may act on ``ad_account`` (``default``: the option's accounts)."""
        own = self.access[token].ad_accounts
        return ad_account in (default if own is None else own)

    def count_call(self, token: str, lifetime: int | None) -> None:
        """One successful call made with ``token``; it expires after ``lifetime`` of them."""
        entry = self.access[token]
        entry.calls += 1
        if lifetime is not None and entry.calls >= lifetime:
            del self.access[token]

    def issue_access(self, scopes: frozenset[str], *, ad_accounts: AdAccounts = None) -> str:
        token = "pina_" + secrets.token_urlsafe(24)
        self.access[token] = AccessToken(scopes, ad_accounts=ad_accounts)
        self.issued.append(token)
        return token

    def rotate_refresh(self, old: str, *, expires_at: int) -> str:
        """A new refresh token, with the scopes and ad accounts of ``old``, replaces it
        (continuous refresh)."""
        new = "pinr_" + secrets.token_urlsafe(24)
        previous = self.refresh.pop(old)
        self.refresh[new] = RefreshToken(previous.scopes, expires_at, previous.ad_accounts)
        self.issued.append(new)
        return new

    def dump(self) -> Json:
        return {
            "access_tokens": {
                t: {"calls": a.calls, "scope": format_scopes(a.scopes), **_accounts(a.ad_accounts)}
                for t, a in self.access.items()
            },
            "refresh_tokens": {
                t: {
                    "expires_at": r.expires_at,
                    "scope": format_scopes(r.scopes),
                    **_accounts(r.ad_accounts),
                }
                for t, r in self.refresh.items()
            },
        }

    def load(self, data: Json, *, default_scopes: frozenset[str]) -> None:
        """Tokens from ``dump`` (or from a version 1 file: no scopes, given the default)."""

        def scopes(entry: Any) -> frozenset[str]:
            if isinstance(entry, dict) and "scope" in entry:
                return parse_scopes(str(entry["scope"]))
            return default_scopes

        def number(entry: Any, key: str) -> int:
            return int(entry[key]) if isinstance(entry, dict) else int(entry)

        def accounts(entry: Any) -> AdAccounts:
            if isinstance(entry, dict) and "ad_accounts" in entry:
                return frozenset(str(a) for a in entry["ad_accounts"])
            return None

        self.access = {
            str(t): AccessToken(scopes(e), number(e, "calls"), accounts(e))
            for t, e in data.get("access_tokens", {}).items()
        }
        self.refresh = {
            str(t): RefreshToken(scopes(e), number(e, "expires_at"), accounts(e))
            for t, e in data.get("refresh_tokens", {}).items()
        }


def _accounts(ad_accounts: AdAccounts) -> Json:
    """A token's own ad accounts for a state file (nothing when it has the option's)."""
    return {} if ad_accounts is None else {"ad_accounts": sorted(ad_accounts)}
