"""The ledger's errors: both are user-actionable and name the database, never a secret."""

from __future__ import annotations


class LedgerError(Exception):
    """A ledger problem the user can act on (bad ``ledger_url``, unreachable database...)."""


class LedgerBusy(LedgerError):
    """Another run holds the lock of the same customer list (or of the refresh token)."""
