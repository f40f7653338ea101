"""What ``ledger_url`` may say: an SQLAlchemy URL of a SQLite file or a PostgreSQL database;
what connecting to PostgreSQL needs."""

from __future__ import annotations

import typing as t
from pathlib import Path

from target_pinterest_audiences.ledger.errors import LedgerError
from target_pinterest_audiences.workdir import WORK_DIR_NAME

if t.TYPE_CHECKING:
    from sqlalchemy.engine import URL

SETTING = "ledger_url"
DEFAULT_FILE = "ledger.sqlite"


def default_location(base_dir: Path) -> Path:
    """The SQLite file used when ``ledger_url`` is not set."""
    return base_dir / WORK_DIR_NAME / DEFAULT_FILE


def parse_ledger_url(raw: str | None, base_dir: Path) -> URL:
    """A usable URL, or :class:`LedgerError` naming the setting (with the password hidden).

    ``None`` is the default SQLite file; a relative SQLite path is relative to ``base_dir``;
    PostgreSQL always goes through psycopg 3.
    """
    from sqlalchemy.engine import URL, make_url

    if raw is None:
        return URL.create("sqlite", database=str(default_location(base_dir)))
    try:
        url = make_url(raw)
    except Exception:
        raise LedgerError(
            f"{SETTING} is not a valid database URL; expected e.g. "
            "'sqlite:////path/to/ledger.sqlite' or "
            "'postgresql+psycopg://user:password@host:5432/dbname'"
        ) from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise LedgerError(
                f"{SETTING} {describe_url(url)!r}: only the psycopg (version 3) driver is "
                "supported; use 'postgresql+psycopg://...'"
            )
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        db = url.database
        if not db or db == ":memory:" or db.startswith("file:"):
            raise LedgerError(
                f"{SETTING} {describe_url(url)!r}: the ledger must be a database file "
                "(e.g. 'sqlite:////path/to/ledger.sqlite'), not an in-memory database"
            )
        path = Path(db)
        if not path.is_absolute():
            path = base_dir / path
        return url.set(drivername="sqlite", database=str(path))
    raise LedgerError(
        f"{SETTING} {describe_url(url)!r}: unsupported database {backend!r}; "
        "use sqlite:///... or postgresql+psycopg://..."
    )


def describe_url(url: URL) -> str:
    """The URL with its password hidden, for messages."""
    return url.render_as_string(hide_password=True)


def require_psycopg(url: URL) -> t.Any:
    """The psycopg 3 module, or a LedgerError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            f"{SETTING} {describe_url(url)!r}: PostgreSQL needs psycopg 3: "
            "pip install 'target-pinterest-audiences[postgres]'"
        ) from None
    return psycopg


def connect_args(url: URL) -> dict[str, t.Any]:
    """A database that went away fails a call within seconds instead of hanging it (unless
    the URL sets its own ``connect_timeout``)."""
    return {} if "connect_timeout" in url.query else {"connect_timeout": 10}
