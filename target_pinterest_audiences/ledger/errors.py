"""The ledger's errors: both are user-actionable and name the database, never a secret."""

from __future__ import annotations


class LedgerError(Exception):
    """A ledger problem the user can act on (bad ``ledger_url``, unreachable database...)."""


class LedgerBusy(LedgerError):
    """Another run holds the lock of the same customer list (or of the refresh token)."""


def error_detail(exc: BaseException) -> str:
    """What a database error says, on one line (the driver's error, not SQLAlchemy's wrapper)."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__
