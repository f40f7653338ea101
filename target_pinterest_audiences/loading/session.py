"""What one run talks to: the Pinterest client, its one pacer, the pool its calls run on, the
index of each ad account it touches, the ledger and the run history.

A `Session` builds them from the settings, checks the credentials against every ad account
before any input is read, starts reading each account into its index in the background while
the input is read, opens the ledger when a stream or the history needs it (the history opens
it off the main thread while the credentials are checked; a dry run never), and closes
everything at the end, whatever happened.
"""

from __future__ import annotations

import logging
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

from target_pinterest_audiences.errors import ConfigError
from target_pinterest_audiences.history import RunHistory
from target_pinterest_audiences.loading.account import AccountIndex, Kind
from target_pinterest_audiences.loading.resolve import Where
from target_pinterest_audiences.pinterest import (
    ClientStats,
    Pacer,
    PinterestClient,
    RetryPolicy,
    TokenManager,
    default_retry_handlers,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_pinterest_audiences.ledger import Ledger
    from target_pinterest_audiences.settings import Settings

# Threads reading the accounts at the start: one per kind of object and account, at most this.
INDEX_THREADS = 4


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
        max_reads_per_minute=settings.max_reads_per_minute,
        rate_period=tuning.rate_period_seconds,
        read_timeout=tuning.read_timeout_seconds,
        retry=retry,
    )


class Session:
    """The run's Pinterest client, pacer, call pool, account indexes, (opened on first use)
    its ledger, and its history."""

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        self.settings = settings
        self.logger = logger
        self._ledger: Ledger | None = None
        self._ledger_lock = threading.Lock()  # streams and the history's thread may make it
        tuning = settings.tuning
        shared = self.ledger() if settings.ledger_url and settings.can_refresh else None
        self.client = build_client(settings, shared)
        self.pacer: Pacer = self.client.pacer  # the run's one pacer: both quotas, every call
        # Every API call of the run's streams runs on these threads, whatever the streams.
        self.calls = ThreadPoolExecutor(tuning.calls_in_flight, thread_name_prefix="pinterest-call")
        self._indexes: dict[str, AccountIndex] = {}
        self._reads: dict[str, list[Future[None]]] = {}
        # Opens the ledger off the main thread (not in a dry run).
        self.history = RunHistory(settings, logger, self.ledger)

    @property
    def account(self) -> str:
        return self.settings.ad_account_id

    # ---- ad accounts ------------------------------------------------------------------

    def account_of(self, stream: str) -> tuple[str, str]:
        """The ad account a stream loads into, and the setting that names it."""
        own = self.settings.for_stream(stream)
        return own.ad_account_id, own.ad_account_setting

    def accounts(self) -> dict[str, str]:
        """Every ad account the settings name, with the setting that names it first."""
        found = {self.settings.ad_account_id: "ad_account_id"}
        for stream in self.settings.streams:
            account, setting = self.account_of(stream)
            found.setdefault(account, setting)
        return found

    def client_for(
        self, account: str, setting: str, stats: ClientStats | None = None
    ) -> PinterestClient:
        return self.client.view(ad_account_id=account, account_setting=setting, stats=stats)

    def check_access(self) -> None:
        """One cheap read per ad account: proves the token, each account and api_url."""
        for account, setting in self.accounts().items():
            self.client_for(account, setting).check_access()

    def start_reading_accounts(self) -> None:
        """Read every ad account into its index in the background (lists and audiences side
        by side), while the input is read."""
        accounts = self.accounts()
        pool = ThreadPoolExecutor(
            min(INDEX_THREADS, 2 * len(accounts)), thread_name_prefix="tpa-index"
        )
        try:
            for account, setting in accounts.items():
                index = self._new_index(account, setting)
                kinds: tuple[Kind, ...] = ("lists", "audiences")
                self._reads[account] = [pool.submit(index.refresh, kind) for kind in kinds]
        finally:
            pool.shutdown(wait=False)

    def _new_index(self, account: str, setting: str) -> AccountIndex:
        client = self.client_for(account, setting)

        def read_all(kind: Kind) -> Iterator[dict[str, t.Any]]:
            return client.iter_customer_lists() if kind == "lists" else client.iter_audiences()

        index = AccountIndex(account, read_all)
        self._indexes[account] = index
        return index

    def index(self, account: str, setting: str = "ad_account_id") -> AccountIndex:
        """The account's index, once read (re-raises what stopped its reading)."""
        if account not in self._indexes:
            self._new_index(account, setting).load()
        for read in self._reads.get(account, ()):
            read.result()  # every caller: a failed read fails every stream of the account
        return self._indexes[account]

    def indexes(self) -> dict[str, AccountIndex]:
        return dict(self._indexes)

    def where(self, stream: str, stats: ClientStats | None = None) -> Where:
        """Where a stream's lists and audiences live: its account's client (counting in
        ``stats`` too) and that account's index."""
        account, setting = self.account_of(stream)
        return Where(self.client_for(account, setting, stats), self.index(account, setting))

    # ---- the ledger --------------------------------------------------------------------

    def ledger(self) -> Ledger:
        """The run's ledger; `LedgerError` when `ledger_url` cannot be used."""
        with self._ledger_lock:  # streams side by side may be first to need it together
            if self._ledger is None:
                from target_pinterest_audiences.ledger import open_ledger  # a dry run never pays

                self._ledger = open_ledger(
                    self.settings.ledger_url, base_dir=self.settings.work_dir.parent
                )
            return self._ledger

    def close(self) -> None:
        try:
            self.pacer.stop("the run is over")  # nothing waits for the quota past the end
            self.calls.shutdown(wait=True, cancel_futures=True)
            for reads in self._reads.values():
                for read in reads:
                    read.cancel()
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
