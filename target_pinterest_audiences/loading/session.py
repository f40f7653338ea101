"""What one run talks to: the Pinterest client, the ledger for mirror streams, the run history.

A `Session` builds them from the settings, opens the mirror ledger only when a stream needs it,
and closes them all at the end, whatever happened.
"""

from __future__ import annotations

import logging
import threading
import typing as t

from target_pinterest_audiences.errors import ConfigError
from target_pinterest_audiences.history import RunHistory
from target_pinterest_audiences.pinterest import (
    PinterestClient,
    RetryPolicy,
    TokenManager,
    default_retry_handlers,
)

if t.TYPE_CHECKING:
    from target_pinterest_audiences.ledger import Ledger
    from target_pinterest_audiences.settings import Settings


def build_client(settings: Settings, ledger: Ledger | None = None) -> PinterestClient:
    """The Pinterest client for these settings (no API call is made yet).

    The newest refresh token is kept in the private directory and, with `ledger_url` set, in
    the ledger database too: runs in fresh containers sharing that database keep working while
    Pinterest rotates the refresh token, and their refreshes are serialized through it.
    """
    if not settings.access_token and not settings.can_refresh:
        raise ConfigError(
            "No Pinterest credentials: set access_token, or refresh_token together with "
            "client_id and client_secret."
        )
    tokens = TokenManager(
        settings.api_url,
        access_token=settings.access_token,
        refresh_token=settings.refresh_token,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_dir=settings.work_dir,
        stores=[ledger.refresh_token_store(settings.client_id)]
        if ledger is not None and settings.client_id
        else [],
    )
    tuning = settings.tuning
    retry = RetryPolicy(handlers=default_retry_handlers(backoff_base=tuning.retry_base_seconds))
    return PinterestClient(
        settings.api_url,
        settings.ad_account_id,
        tokens,
        max_writes_per_minute=settings.max_requests_per_minute,
        rate_period=tuning.rate_period_seconds,
        read_timeout=tuning.read_timeout_seconds,
        retry=retry,
    )


class Session:
    """The run's Pinterest client, (opened on first use) its mirror ledger, and its history."""

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        self.settings = settings
        self.logger = logger
        self._ledger: Ledger | None = None
        self._ledger_lock = threading.Lock()  # the history's thread makes it too
        shared = self.ledger() if settings.ledger_url and settings.can_refresh else None
        self.client = build_client(settings, shared)
        # Opens the ledger off the main thread (not in a dry run).
        self.history = RunHistory(settings, logger, self.ledger)

    @property
    def account(self) -> str:
        return self.settings.ad_account_id

    def ledger(self) -> Ledger:
        """The run's ledger; `LedgerError` when `ledger_url` cannot be used."""
        with self._ledger_lock:
            if self._ledger is None:
                from target_pinterest_audiences.ledger import open_ledger

                self._ledger = open_ledger(
                    self.settings.ledger_url, base_dir=self.settings.work_dir.parent
                )
            return self._ledger

    def close(self) -> None:
        try:
            self.history.close()
            self.client.close()
        finally:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
