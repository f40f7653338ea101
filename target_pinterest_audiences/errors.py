"""The failures a user can act on. Each message says what is wrong and what to do, never a value.

These sit at the bottom of the package: every other module may import them, they import nothing.
The Pinterest client (`pinterest.errors`) and the ledger (`ledger.LedgerError`) have their own,
since they are usable without the rest of the target.
"""

from __future__ import annotations


class TargetError(Exception):
    """A failure the user can act on; printed as its message alone, without a traceback."""


class ConfigError(TargetError):
    """A setting is missing or wrong; the message names the setting and what is expected."""


class InputError(TargetError):
    """The input cannot be processed; the message names the line and what to do."""


class StreamRefused(TargetError):
    """A stream breaks a rule that makes it unsafe to send anything; nothing was sent for it."""


class StreamFailed(TargetError):
    """A stream's sync stopped part way (Pinterest or the ledger failed); the message says why."""
