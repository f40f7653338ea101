"""Pinterest API v5 HTTP client (customer lists and audiences) - no Singer in here."""

from __future__ import annotations

from .auth import TokenManager
from .client import ClientStats, PinterestClient
from .errors import (
    PinterestApiError,
    PinterestAuthError,
    PinterestError,
    RetryBudgetExhausted,
    WriteOutcomeUnknown,
)
from .http_retry import RetryPolicy
from .pacing import RateLimiter

__all__ = [
    "ClientStats",
    "PinterestApiError",
    "PinterestAuthError",
    "PinterestClient",
    "PinterestError",
    "RateLimiter",
    "RetryBudgetExhausted",
    "RetryPolicy",
    "TokenManager",
    "WriteOutcomeUnknown",
]
