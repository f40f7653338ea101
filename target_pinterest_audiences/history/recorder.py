"""The run history of one run: the ledger database opened off the main thread, read for the
last run of a stream, written once per stream.

Opening the database (importing SQLAlchemy, creating or migrating the file) costs a small run
a good part of its start, so a thread does it while the first API call checks the credentials.
It opens the run's one `Ledger` (the mirror streams' too: the ledger serialises its opening, so
two openers in one process never race for the file). The history is a record, not part of the
sync: a database that cannot be opened or written costs a warning (once), never a stream. A dry
run records nothing and opens nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import typing as t
from collections.abc import Callable

from target_pinterest_audiences.history.record import StreamRead, run_record
from target_pinterest_audiences.settings import SECRET_SETTINGS

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from target_pinterest_audiences.ledger import Ledger, LedgerHistory
    from target_pinterest_audiences.settings import Settings

# Longest wait for the database at the end of a run (PostgreSQL's connect timeout is 10 s).
OPEN_WAIT_SECONDS = 60.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RunHistory:
    """One run's view of the history: `previous(stream)` and `add(...)`, per stream.

    Thread-safe: streams syncing side by side read and write it (the ledger's connections
    are its own)."""

    def __init__(
        self, settings: Settings, logger: logging.Logger, ledger: Callable[[], Ledger]
    ) -> None:
        """`ledger`: the run's ledger (made on first call; its owner closes it)."""
        self._settings = settings
        self._logger = logger
        self.started_at = utc_now()
        self._make_ledger = ledger
        self._ledger: Ledger | None = None
        self._table: LedgerHistory | None = None
        self._problem: str | None = None
        self._warned = False
        self._thread: threading.Thread | None = None
        if not settings.dry_run:
            self._thread = threading.Thread(target=self._open, name="tpa-history", daemon=True)
            self._thread.start()

    def _open(self) -> None:
        from target_pinterest_audiences.ledger import LedgerError

        try:
            ledger = self._make_ledger()
            self._ledger = ledger
            ledger.open()
            self._table = ledger.history()
        except LedgerError as error:
            self._problem = str(error)
        except Exception as error:  # a record must never stop a run
            self._problem = f"it cannot be opened ({type(error).__name__}: {error})"

    def wait(self) -> None:
        """Wait until the database is open (or could not be): before the input is read, so that
        the reader's worker processes are forked while the target runs no thread."""
        self._ready()

    def _ready(self) -> LedgerHistory | None:
        if self._thread is None:
            return None
        self._thread.join(OPEN_WAIT_SECONDS)
        if self._thread.is_alive():
            self._warn("opening the ledger database took too long")
            return None
        if self._table is None:
            self._warn(self._problem or "it could not be opened")
        return self._table

    def _warn(self, problem: str, *, opened: bool = False) -> None:
        """Once per run. `opened`: the history was open, then a read or a write failed."""
        if self._warned:
            return
        self._warned = True
        if opened:
            self._logger.warning(
                "The run history could not be read or written: %s. The streams still sync; "
                "pinterest-audiences-report may miss some of this run's.",
                problem.rstrip("."),
            )
            return
        self._logger.warning(
            "The run history cannot be kept: %s. This run's streams sync, but are not recorded "
            "(pinterest-audiences-report will not show them), and a stream that now loads "
            "another customer list is not pointed out. Check ledger_url (or the working "
            "directory's .target-pinterest-audiences/).",
            problem.rstrip("."),
        )

    # ---- reads and writes ----------------------------------------------------------------

    def previous(self, stream: str) -> dict[str, t.Any] | None:
        """The customer list this stream loaded last in its ad account (its own, or the
        `ad_account_id` setting), as the STATE entry of that run named it (`ad_account_id`,
        `customer_list_id`, `segment_name`), or None."""
        table = self._ready()
        if table is None:
            return None
        from target_pinterest_audiences.ledger import LedgerError

        try:
            account = self._settings.for_stream(stream).ad_account_id
            last = table.last(account, stream, with_list=True)
        except LedgerError as error:
            self._warn(str(error), opened=True)
            return None
        if last is None:
            return None
        return {
            "ad_account_id": last.ad_account_id,
            "customer_list_id": last.customer_list_id,
            "segment_name": last.segment_name,
        }

    def add(
        self,
        read: StreamRead,
        *,
        started_at: dt.datetime | None = None,
        entry: Mapping[str, t.Any] | None = None,
        failure: str | None = None,
        refused: bool = False,
        customer_list_id: str | None = None,
        audience_id: str | None = None,
        counters: Mapping[str, t.Any] | None = None,
    ) -> None:
        """Record one stream of this run: its STATE entry when it synced, else its failure (with
        the list and audience ids it got to, if any)."""
        table = self._ready()
        if table is None:
            return
        settings = self._settings
        own = settings.for_stream(read.stream)
        record = run_record(
            read,
            ad_account_id=own.ad_account_id,
            sync_mode=own.sync_mode.value,
            started_at=started_at or self.started_at,
            finished_at=utc_now(),
            entry=entry,
            failure=failure,
            refused=refused,
            customer_list_id=customer_list_id,
            audience_id=audience_id,
            counters=counters,
            secrets=(
                *(getattr(settings, name) for name in SECRET_SETTINGS),
                *(self._ledger.secrets if self._ledger is not None else ()),
            ),
        )
        from target_pinterest_audiences.ledger import LedgerError

        try:
            table.add(record)
        except LedgerError as error:
            self._warn(str(error), opened=True)

    def close(self) -> None:
        """Wait for the opening thread (the ledger itself is closed by its owner)."""
        if self._thread is not None:
            self._thread.join(OPEN_WAIT_SECONDS)
        self._table = None
