"""Pinterest API v5 HTTP client (customer lists and audiences) - no Singer in here.

* :mod:`.client` - the endpoints (paths, bodies, paging, hex-encoding of member digests),
* :mod:`.transport` - one call: pace, send, refresh on 401, map the answer, retry,
* :mod:`.errors` - the exceptions and the mapping from a refusal to its exception and hint,
* :mod:`.auth` - access and refresh tokens, :mod:`.token_store` - where the newest
  refresh token is kept between runs,
* :mod:`.pacing` - the run's pacer: per-minute caps, stopped at once by a fatal error,
* :mod:`.http_retry` - what is retried and how long to wait, :mod:`.stats` - counters,
* :mod:`.quota` - the client-wide stop once Pinterest's quota is used up.
"""

from __future__ import annotations

from .auth import FileTokenStore, RefreshTokenStore, StoredRefreshToken, TokenManager
from .client import PinterestClient
from .errors import (
    PinterestApiError,
    PinterestAuthError,
    PinterestError,
    PinterestScopeError,
    QuotaExhausted,
    RequestTooLarge,
    RetryBudgetExhausted,
    RunStopped,
    WriteOutcomeUnknown,
    api_url_problem,
)
from .http_retry import RetryPolicy, default_retry_handlers
from .pacing import Pacer, RateLimiter
from .stats import ClientStats

__all__ = [
    "ClientStats",
    "FileTokenStore",
    "Pacer",
    "PinterestApiError",
    "PinterestAuthError",
    "PinterestClient",
    "PinterestError",
    "PinterestScopeError",
    "QuotaExhausted",
    "RateLimiter",
    "RefreshTokenStore",
    "RequestTooLarge",
    "RetryBudgetExhausted",
    "RetryPolicy",
    "RunStopped",
    "StoredRefreshToken",
    "TokenManager",
    "WriteOutcomeUnknown",
    "api_url_problem",
    "default_retry_handlers",
]
