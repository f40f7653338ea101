"""The run history: one row per stream per run, kept in the ledger database (schema version 3).

A `RunRecord` is one row: when the stream's sync started and finished, its sync mode and
outcome (`synced`, `failed` or `refused`), the failure's message, and the figures of the
stream's STATE entry (ids, counts, statuses, sizes). Nothing in it is a raw identifier or a
secret: ids are Pinterest's, counts are counts, messages are the target's own (which never
quote a value of a row) and pass through `history.record.clean_message` before they get here.

`LedgerHistory` reads and writes the table; the ledger's `history()` hands one out. Rows come
back in the order they were written (`id`), oldest first. `read_history` reads it for the
report without creating, migrating or writing anything.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from target_pinterest_audiences.ledger.errors import LedgerError, error_detail
from target_pinterest_audiences.ledger.schema import (
    META,
    RUN_COLUMNS,
    RUNS,
    SCHEMA_VERSION,
    stored_version,
)
from target_pinterest_audiences.ledger.url import (
    SETTING,
    connect_args,
    describe_url,
    parse_ledger_url,
    require_psycopg,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sqlalchemy.engine import Connection

    from target_pinterest_audiences.ledger.base import Ledger


OUTCOMES = ("synced", "failed", "refused")
# The STATE entry's keys, in the order the target writes them; `members` and `match_rate` are
# in a mirror stream's entry only.
STATE_KEYS = (
    "ad_account_id", "segment_name", "customer_list_id", "audience_id", "list_type",
    "records_added", "records_removed", "records_invalid", "invalid_by_reason",
    "pinterest_exceptions", "list_status", "audience_status", "audience_size", "synced_at",
)  # fmt: skip
MIRROR_KEYS = ("members", "match_rate")
_JSON_COLUMNS = ("invalid_by_reason", "pinterest_exceptions", "extra")


@dataclass(frozen=True)
class RunRecord:
    """One stream's run, as the history keeps it (times: ISO-8601 in UTC, `Z`)."""

    ad_account_id: str
    stream: str
    started_at: str
    finished_at: str
    outcome: str  # one of OUTCOMES
    sync_mode: str  # explicit | mirror
    message: str | None = None  # why it failed or was refused
    segment_name: str | None = None
    customer_list_id: str | None = None
    audience_id: str | None = None
    list_type: str | None = None
    rows_read: int | None = None
    records_added: int | None = None
    records_removed: int | None = None
    records_invalid: int | None = None
    invalid_by_reason: Mapping[str, int] = field(default_factory=dict)
    pinterest_exceptions: Mapping[str, int] = field(default_factory=dict)
    list_status: str | None = None
    audience_status: str | None = None
    audience_size: int | None = None
    members: int | None = None
    match_rate: float | None = None
    synced_at: str | None = None
    calls: int | None = None
    retries: int | None = None
    quota_wait_seconds: float | None = None
    extra: Mapping[str, t.Any] = field(default_factory=dict)  # the STATE entry's other keys
    id: int | None = None  # given by the database: the order runs were written in

    def state_entry(self) -> dict[str, t.Any]:
        """The STATE entry this run wrote (a run that did not sync: its keys, mostly null)."""
        entry = {key: getattr(self, key) for key in STATE_KEYS}
        entry["invalid_by_reason"] = dict(self.invalid_by_reason)
        entry["pinterest_exceptions"] = dict(self.pinterest_exceptions)
        if self.sync_mode == "mirror":
            entry.update({key: getattr(self, key) for key in MIRROR_KEYS})
        entry.update(self.extra)
        return entry

    def as_json(self) -> dict[str, t.Any]:
        """The run as the report's JSON has it: when, how, the outcome, the STATE entry's keys,
        then what the run did (rows read, calls, retries, seconds waited for the quota)."""
        return {
            "finished_at": self.finished_at,
            "sync_mode": self.sync_mode,
            "outcome": self.outcome,
            "message": self.message,
            **self.state_entry(),
            "started_at": self.started_at,
            "rows_read": self.rows_read,
            "calls": self.calls,
            "retries": self.retries,
            "quota_wait_seconds": self.quota_wait_seconds,
        }


_COLUMN_NAMES = tuple(name for name, _ in RUN_COLUMNS)
assert set(_COLUMN_NAMES) == {f.name for f in fields(RunRecord)} - {"id"}, "columns and fields"
_INSERT = (
    f"INSERT INTO {RUNS} ({', '.join(_COLUMN_NAMES)}) "  # noqa: S608
    f"VALUES ({', '.join(':' + name for name in _COLUMN_NAMES)})"
)
_SELECT = f"SELECT id, {', '.join(_COLUMN_NAMES)} FROM {RUNS}"  # noqa: S608


class LedgerHistory:
    """The run history's table in one ledger database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def add(self, record: RunRecord) -> None:
        """Write one run of one stream (its own small transaction)."""
        values = asdict(record)
        values.pop("id")
        for name in _JSON_COLUMNS:
            values[name] = json.dumps(dict(values[name]), sort_keys=True)
        self._ledger._execute("writing the run history", _INSERT, values)

    def last(self, ad_account_id: str, stream: str, *, with_list: bool = False) -> RunRecord | None:
        """The stream's latest run in this ad account (`with_list`: the latest that named its
        customer list), or None."""
        where = "WHERE ad_account_id = :a AND stream = :s"
        if with_list:
            where += " AND customer_list_id IS NOT NULL"
        rows = self._select(f"{where} ORDER BY id DESC LIMIT 1", {"a": ad_account_id, "s": stream})
        return rows[0] if rows else None

    def runs(self, streams: Iterable[str] | None = None) -> list[RunRecord]:
        """Every run (of these streams), oldest first."""
        led = self._ledger
        with led._translated("reading the run history", members=False), led._read() as conn:
            return _runs(conn, streams)

    def _select(self, tail: str, params: dict[str, t.Any]) -> list[RunRecord]:
        led = self._ledger
        with led._translated("reading the run history", members=False), led._read() as conn:
            return _select(conn, tail, params)


def read_history(
    url: str | None, *, base_dir: Path, streams: Iterable[str] | None = None
) -> list[RunRecord]:
    """The runs (of these streams) in the ledger at ``url`` (``ledger_url``; None: the default
    SQLite file under ``base_dir``), oldest first, read without writing anything: a ledger that
    does not exist yet, or was written by a release before the history, has none."""
    import sqlalchemy as sa

    parsed = parse_ledger_url(url, base_dir)
    where = describe_url(parsed)
    postgres = parsed.get_backend_name() == "postgresql"
    if not postgres and not Path(str(parsed.database)).exists():
        return []
    arguments = {}
    if postgres:
        require_psycopg(parsed)
        arguments = connect_args(parsed)
    engine = sa.create_engine(parsed, connect_args=arguments)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if META not in tables:
                return []
            version = stored_version(conn)
            if version is None or not str(version).isdigit() or RUNS not in tables:
                return []
            if int(version) > int(SCHEMA_VERSION):
                raise LedgerError(
                    f"{SETTING} {where!r}: the ledger has schema version {version}, written by a "
                    f"newer release; this one reads version {SCHEMA_VERSION}: upgrade "
                    "target-pinterest-audiences"
                )
            return _runs(conn, streams)
    except sa.exc.SQLAlchemyError as error:
        detail = error_detail(error)
        if parsed.password:
            detail = detail.replace(str(parsed.password), "***")
        raise LedgerError(f"{SETTING} {where!r}: cannot read the run history: {detail}") from None
    finally:
        engine.dispose()


def _runs(conn: Connection, streams: Iterable[str] | None) -> list[RunRecord]:
    wanted = sorted(set(streams)) if streams is not None else None
    if wanted is None:
        return _select(conn, "ORDER BY id", {})
    if not wanted:
        return []
    names = {f"s{n}": name for n, name in enumerate(wanted)}
    clause = ", ".join(f":{key}" for key in names)
    return _select(conn, f"WHERE stream IN ({clause}) ORDER BY id", names)


def _select(conn: Connection, tail: str, params: dict[str, t.Any]) -> list[RunRecord]:
    import sqlalchemy as sa

    rows = conn.execute(sa.text(f"{_SELECT} {tail}"), params).mappings().all()
    return [_record(dict(row)) for row in rows]


def _record(row: dict[str, t.Any]) -> RunRecord:
    for name in _JSON_COLUMNS:
        row[name] = json.loads(row[name]) if row[name] else {}
    return RunRecord(**row)
