"""One call to Pinterest: pace, send, refresh the token on 401, map the answer, retry.

The endpoints (:mod:`.client`) describe a call as a :class:`Call`; :meth:`Transport.request`
returns the answer's JSON object or raises one of :mod:`.errors`. What is retried and how long
to wait is decided by the :class:`~.http_retry.RetryPolicy`; the transport only does the
waiting. Logs carry method, path, status and Pinterest's code: never a token or a body.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .auth import TokenManager
from .errors import (
    PinterestApiError,
    PinterestAuthError,
    PinterestError,
    QuotaExhausted,
    RetryBudgetExhausted,
    Subject,
    WriteOutcomeUnknown,
    error_fields,
    is_missing_scope,
    refusal_error,
)
from .http_retry import HttpRequest, HttpResponse, RetryDecision, RetryPolicy, RetryState
from .http_retry.failure import describe_failure, never_sent
from .pacing import Pacer
from .quota import QuotaBreaker, category_of
from .stats import ClientStats

logger = logging.getLogger(__name__)

POOL_SIZE = 8
# How many 401s in a row a token that worked before may get (it expired since) before
# a refused refresh is taken as final.
_EXPIRED_SINCE_REFRESHES = 3

Answer = HttpResponse | None


@dataclass(frozen=True)
class Account:
    """The ad account a call is about, and the setting that names it (for messages)."""

    id: str
    setting: str  # `ad_account_id`, or `streams.<name>.ad_account_id`


@dataclass(frozen=True)
class Call:
    """One API call as the endpoints describe it.

    ``path`` is relative to the API URL; ``description`` names the call in messages
    (``PATCH customer_lists/643 (ADD, 10 records)``); ``body`` is a JSON object, or bytes
    already encoded as JSON; ``subject`` is the object a refusal is about (for hints).
    """

    method: str
    path: str
    description: str
    account: Account
    params: Mapping[str, Any] | None = field(default=None, repr=False)
    body: dict[str, Any] | bytes | None = field(default=None, repr=False)  # members: never shown
    subject: Subject | None = None
    stats: ClientStats | None = field(default=None, repr=False, compare=False)  # a view's own
    # Called before the call goes again after an attempt that may have been applied.
    on_resend: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def write(self) -> bool:
        return self.method != "GET"


@dataclass
class _AuthRound:
    """401 bookkeeping of one call."""

    just_refreshed: bool = False
    refreshes: int = 0


class Transport:
    """Thread-safe: one ``requests.Session`` per thread, shared pacers, stats and tokens."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenManager,
        *,
        retry: RetryPolicy,
        pacer: Pacer,
        timeout: tuple[float, float],
        user_agent: str,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.retry = retry
        self.pacer = pacer
        self.timeout = timeout
        self.user_agent = user_agent
        self.stats = ClientStats()
        self.quota = QuotaBreaker(retry.wall_clock)
        self.endpoint = _endpoint(self.api_url)
        # The last token some call succeeded with: a refreshed token that is refused after it
        # worked has expired since (other calls used it up), it was not refused outright.
        self._proven_token: str | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # ---------------------------------------------------------------- sessions
    @property
    def open_sessions(self) -> int:
        with self._sessions_lock:
            return len(self._sessions)

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers["User-Agent"] = self.user_agent
            session.headers["Accept"] = "application/json"
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _stats_of(self, call: Call) -> tuple[ClientStats, ...]:
        """The counters a call counts in: the client's, and its view's own."""
        return (self.stats,) if call.stats is None else (self.stats, call.stats)

    # ---------------------------------------------------------------- one call
    def request(self, call: Call) -> dict[str, Any]:
        """Send ``call`` until it succeeds, is refused, or its retry budget runs out."""
        state = RetryState()
        auth = _AuthRound()
        maybe_applied = False  # the last attempt may have reached Pinterest and been applied
        while True:
            if maybe_applied and call.on_resend is not None:
                call.on_resend()
            token = self._acquire(call, state)
            response, error = self._send(call, token)
            if response is not None and 200 <= response.status_code < 300:
                self._proven_token = token
                return _parse(response, call.description)
            if response is not None and _refreshable_401(response):
                self._refresh_after_401(call, response, token, auth)
                maybe_applied = False
                continue
            auth.just_refreshed = False
            answer = self._retryable_answer(call, response) if response is not None else None
            if answer is None:
                self._check_outcome_known(call, error)
            maybe_applied = (answer is None and error is not None and not never_sent(error)) or (
                answer is not None and answer.status_code >= 500
            )
            wait = self._retry_wait(call, state, answer, error)
            if wait > 0:
                self.retry.sleep(wait)

    def _acquire(self, call: Call, state: RetryState) -> str:
        """Wait for the pacer, take the current token, count the attempt."""
        self.quota.check(call.description, call.method)
        waited = self.pacer.limiter(write=call.write).acquire()
        # again: another call may have found the quota used up while this one waited
        self.quota.check(call.description, call.method)
        token = self.tokens.get()
        for stats in self._stats_of(call):
            stats.record_attempt(
                write=call.write, pacer_wait=waited, token_refreshes=self.tokens.refresh_count
            )
        state.attempts += 1
        return token

    def _send(
        self, call: Call, token: str
    ) -> tuple[requests.Response | None, requests.RequestException | None]:
        encoded = isinstance(call.body, bytes)
        headers = {"Authorization": f"Bearer {token}"}
        if encoded:
            headers["Content-Type"] = "application/json"
        try:
            response = self._session().request(
                call.method,
                f"{self.api_url}/{call.path}",
                params=call.params,
                json=None if encoded else call.body,
                data=call.body if encoded else None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            failure = describe_failure(exc, self.endpoint)
            logger.debug("%s /%s failed: %s", call.method, call.path, failure)
            return None, exc
        logger.debug("%s /%s -> %s", call.method, call.path, response.status_code)
        return response, None

    def _refresh_after_401(
        self, call: Call, response: requests.Response, token: str, auth: _AuthRound
    ) -> None:
        """Refresh the token so that the call can be sent again, or raise when that cannot help."""
        code, api_message = error_fields(response)
        expired_since = token == self._proven_token and auth.refreshes < _EXPIRED_SINCE_REFRESHES
        if auth.just_refreshed and not expired_since:
            raise PinterestAuthError(
                f"Pinterest refused {call.description} with a freshly refreshed token",
                settings=("refresh_token", "client_id", "client_secret"),
                status=401,
                code=code,
                api_message=api_message,
            )
        if not self.tokens.can_refresh:
            raise PinterestAuthError(
                f"Pinterest refused the access token for {call.description}",
                settings=("access_token", "refresh_token", "client_id", "client_secret"),
                status=401,
                code=code,
                api_message=api_message,
            )
        logger.info("%s /%s -> 401; refreshing the access token", call.method, call.path)
        self.tokens.refresh(token)
        auth.refreshes += 1
        auth.just_refreshed = True
        for stats in self._stats_of(call):
            stats.record_auth_retry(token_refreshes=self.tokens.refresh_count)

    def _retryable_answer(self, call: Call, response: requests.Response) -> HttpResponse:
        """The answer for the retry policy to judge; raises for a final refusal (4xx)."""
        status = response.status_code
        code, api_message = error_fields(response)
        if 400 <= status < 500 and status not in (408, 429):
            logger.warning("%s /%s -> %s (code %s)", call.method, call.path, status, code)
            raise refusal_error(
                call.description,
                status,
                code,
                api_message,
                write=call.write,
                ad_account_id=call.account.id,
                account_setting=call.account.setting,
                api_url=self.api_url,
                subject=call.subject,
            )
        answer = HttpResponse(
            status_code=status, headers=dict(response.headers), code=code, message=api_message
        )
        response.close()
        return answer

    def _check_outcome_known(self, call: Call, error: BaseException | None) -> None:
        """A create that may have reached Pinterest is not sent again blindly."""
        if call.method == "POST" and error is not None and not never_sent(error):
            cause = describe_failure(error, self.endpoint)
            logger.warning(
                "%s /%s failed after the request may have been sent (%s)",
                call.method,
                call.path,
                cause,
            )
            raise WriteOutcomeUnknown(call.description, cause) from None

    def _retry_wait(
        self, call: Call, state: RetryState, answer: Answer, error: BaseException | None
    ) -> float:
        """Seconds to wait before the next attempt; raises when the call is not retried."""
        request = HttpRequest(
            method=call.method, path=f"/{call.path}", description=call.description
        )
        decision = self.retry.decide(
            state, request, answer, error if isinstance(error, Exception) else None
        )
        if decision is None:
            raise self._final_error(call, answer, error)
        if decision.exhausted:
            raise self._give_up(call, state, decision, answer, error)
        if decision.reason == "429":
            # Pinterest's quota is the app's and user's, not this call's: every call waits.
            self.pacer.limiter(write=call.write).pause(decision.wait)
        logger.warning(
            "%s /%s -> %s; retry %d in %.2fs (%s)",
            call.method,
            call.path,
            answer.status_code if answer else describe_failure(error, self.endpoint),
            state.retries + 1,
            decision.wait,
            decision.reason,
        )
        state.record_retry(decision.reason, decision.wait)
        for stats in self._stats_of(call):
            stats.record_retry(decision.reason, decision.wait)
        return decision.wait

    def _give_up(
        self,
        call: Call,
        state: RetryState,
        decision: RetryDecision,
        answer: Answer,
        error: BaseException | None,
    ) -> PinterestError:
        if decision.reason == "429" and decision.wait_exceeds_budget and answer is not None:
            return self._quota_exhausted(call, decision, answer)
        failure = describe_failure(error, self.endpoint) if error is not None else None
        # Not logged here: the error says it all, and whoever catches it reports it once.
        return RetryBudgetExhausted(
            call.description,
            attempts=state.attempts,
            waited=state.waited,
            last_reason=decision.reason,
            status=answer.status_code if answer else None,
            code=answer.code if answer else None,
            api_message=answer.message if answer else None,
            last_error=failure,
            next_wait=decision.wait if state.attempts < self.retry.max_attempts else None,
        )

    def _quota_exhausted(
        self, call: Call, decision: RetryDecision, answer: HttpResponse
    ) -> QuotaExhausted:
        """The quota will not lift within the budget: stop this call and, until the reset,
        every other call of its category."""
        error = QuotaExhausted(
            call.description,
            category=category_of(call.method),
            resets_at=self.quota.now() + timedelta(seconds=decision.wait),
            wait_seconds=decision.wait,
            status=answer.status_code,
            code=answer.code,
            api_message=answer.message,
        )
        self.quota.trip(error)
        logger.error(
            "%s /%s -> 429 (code %s); Pinterest's %s quota resets in %.0fs: stopping",
            call.method,
            call.path,
            answer.code,
            error.category,
            decision.wait,
        )
        return error

    def _final_error(
        self, call: Call, answer: Answer, error: BaseException | None
    ) -> PinterestError:
        """An outcome no retry handler takes (an unexpected status, a malformed request)."""
        if answer is not None:
            return PinterestApiError(
                call.description, answer.status_code, answer.code, answer.message
            )
        return PinterestError(
            f"{call.description} failed: {describe_failure(error, self.endpoint)}"
        )


def _refreshable_401(response: requests.Response) -> bool:
    """A 401 that a new access token may cure (not a missing scope: that one never heals)."""
    if response.status_code != 401:
        return False
    code, _ = error_fields(response)
    return not is_missing_scope(401, code)


def _endpoint(api_url: str) -> str:
    """``host:port`` of the API, for connection error messages."""
    parts = urlsplit(api_url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port or (443 if parts.scheme == 'https' else 80)}"


def _parse(response: requests.Response, description: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise PinterestError(
            f"{description}: Pinterest answered HTTP {response.status_code} with a body "
            "that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise PinterestError(f"{description}: unexpected answer (not a JSON object)")
    if "id" in data and data["id"] is not None:
        data["id"] = str(data["id"])
    return data
