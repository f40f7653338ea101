"""Fixtures shared by the end-to-end tests: mirror mode on both ledger back ends."""

from tests.e2e.test_mirror import backend, mirror

__all__ = ["backend", "mirror"]
