"""Pinterest API v5 client for customer lists and audiences.

Transport (one ``requests.Session`` per thread), pacing (:mod:`.pacing`), retry
policy (:mod:`.http_retry`) and tokens (:mod:`.auth`) are kept apart. Logs and
exception messages carry method, path, status, Pinterest's error code/message,
counts and waits - never tokens, request bodies or ``records``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .auth import TokenManager
from .errors import (
    PinterestApiError,
    PinterestAuthError,
    PinterestError,
    RetryBudgetExhausted,
    WriteOutcomeUnknown,
    error_fields,
)
from .http_retry import HttpRequest, HttpResponse, RetryPolicy, RetryState
from .pacing import RateLimiter

logger = logging.getLogger(__name__)

PAGE_SIZE = 250
POOL_SIZE = 8
RETRY_REASONS = ("429", "5xx", "connection", "timeout")


@dataclass
class ClientStats:
    """Counters of a :class:`PinterestClient` (updated under a lock; read freely)."""

    reads: int = 0
    writes: int = 0
    retries: int = 0
    retries_by_reason: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(RETRY_REASONS, 0)
    )
    token_refreshes: int = 0
    auth_retries: int = 0
    pacer_wait_seconds: float = 0.0
    retry_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "reads": self.reads,
                "writes": self.writes,
                "retries": self.retries,
                "retries_by_reason": dict(self.retries_by_reason),
                "token_refreshes": self.token_refreshes,
                "auth_retries": self.auth_retries,
                "pacer_wait_seconds": self.pacer_wait_seconds,
                "retry_wait_seconds": self.retry_wait_seconds,
            }


def _safe_before_send(error: BaseException) -> bool:
    """True when the request certainly never reached the server (connect failed)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        exc = stack.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(
            exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        ):
            return True
        if isinstance(exc, ConnectionRefusedError):
            return True
        stack.extend(a for a in getattr(exc, "args", ()) if isinstance(a, BaseException))
        stack.append(getattr(exc, "reason", None))
        stack.append(exc.__cause__)
        stack.append(exc.__context__)
    return False


def _describe_error(error: BaseException | None) -> str:
    if error is None:
        return "no answer"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection error"
    return type(error).__name__


class PinterestClient:
    """Thread-safe client of the Pinterest v5 customer list and audience endpoints."""

    def __init__(
        self,
        api_url: str,
        ad_account_id: str,
        tokens: TokenManager,
        *,
        max_writes_per_minute: int = 400,
        max_reads_per_minute: int = 1000,
        connect_timeout: float = 10,
        read_timeout: float = 120,
        retry: RetryPolicy | None = None,
        user_agent: str = "target-pinterest-audiences",
        page_size: int = PAGE_SIZE,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {PAGE_SIZE}")
        self.page_size = page_size
        self.api_url = api_url.rstrip("/")
        self.ad_account_id = str(ad_account_id)
        self.tokens = tokens
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.user_agent = user_agent
        self.write_limiter = RateLimiter(
            max_writes_per_minute, clock=self.retry.clock, sleep=self.retry.sleep
        )
        self.read_limiter = RateLimiter(
            max_reads_per_minute, clock=self.retry.clock, sleep=self.retry.sleep
        )
        self.stats = ClientStats()
        # The last token some call succeeded with: a refreshed token that is refused after it
        # worked has expired since (other calls used it up), it was not refused outright.
        self._proven_token: str | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> PinterestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PinterestClient(api_url={self.api_url!r}, ad_account_id={self.ad_account_id!r}, "
            f"tokens={self.tokens!r})"
        )

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

    # ------------------------------------------------------------ customer lists
    @property
    def _account_path(self) -> str:
        return f"ad_accounts/{quote(self.ad_account_id, safe='')}"

    def iter_customer_lists(self) -> Iterator[dict[str, Any]]:
        """Every customer list of the ad account (follows ``bookmark`` through all pages)."""
        yield from self._paginate("customer_lists", "GET customer_lists")

    def find_customer_lists_by_name(self, name: str) -> list[dict[str, Any]]:
        return [item for item in self.iter_customer_lists() if item.get("name") == name]

    def get_customer_list(self, list_id: str) -> dict[str, Any]:
        list_id = str(list_id)
        return self._request(
            "GET",
            f"customer_lists/{quote(list_id, safe='')}",
            description=f"GET customer_lists/{list_id}",
            list_id=list_id,
        )

    def create_customer_list(
        self, name: str, list_type: str, records: Sequence[str]
    ) -> dict[str, Any]:
        body = {"name": name, "list_type": list_type, "records": ",".join(records)}
        return self._request(
            "POST",
            "customer_lists",
            json_body=body,
            description=f"POST customer_lists ({list_type}, {len(records)} records)",
        )

    def update_customer_list(
        self, list_id: str, operation: Literal["ADD", "REMOVE"], records: Sequence[str]
    ) -> dict[str, Any]:
        if operation not in ("ADD", "REMOVE"):
            raise ValueError("operation must be 'ADD' or 'REMOVE'")
        list_id = str(list_id)
        return self._request(
            "PATCH",
            f"customer_lists/{quote(list_id, safe='')}",
            json_body={"operation_type": operation, "records": ",".join(records)},
            description=f"PATCH customer_lists/{list_id} ({operation}, {len(records)} records)",
            list_id=list_id,
        )

    def update_customer_list_hashes(
        self, list_id: str, operation: Literal["ADD", "REMOVE"], joined: str, count: int
    ) -> dict[str, Any]:
        """`update_customer_list` with the records already comma-joined (hex hashes only).

        The body is encoded once, by hand: the hashes need no JSON escaping, and a 10,000
        record call would otherwise hold three copies of its 650 KB body.
        """
        if operation not in ("ADD", "REMOVE"):
            raise ValueError("operation must be 'ADD' or 'REMOVE'")
        # Cheap scans (isalnum would walk 640 KB of str per call): ASCII without quote or
        # backslash needs no JSON escaping.
        if not joined.isascii() or '"' in joined or "\\" in joined:
            raise ValueError("records must be comma-separated hex hashes")
        list_id = str(list_id)
        body = b'{"operation_type":"%s","records":"%s"}' % (operation.encode(), joined.encode())
        return self._request(
            "PATCH",
            f"customer_lists/{quote(list_id, safe='')}",
            json_body=body,
            description=f"PATCH customer_lists/{list_id} ({operation}, {count} records)",
            list_id=list_id,
        )

    # ----------------------------------------------------------------- audiences
    def iter_audiences(self) -> Iterator[dict[str, Any]]:
        """Every audience owned by the ad account (all pages)."""
        yield from self._paginate("audiences", "GET audiences")

    def find_customer_list_audience(self, list_id: str) -> dict[str, Any] | None:
        """The CUSTOMER_LIST audience built on ``list_id`` (the most recent if several)."""
        list_id = str(list_id)
        found = [
            audience
            for audience in self.iter_audiences()
            if audience.get("audience_type") == "CUSTOMER_LIST"
            and str((audience.get("rule") or {}).get("customer_list_id")) == list_id
        ]
        if not found:
            return None

        def key(audience: dict[str, Any]) -> tuple[int, int, str]:
            ident = str(audience.get("id", ""))
            return (1, int(ident), ident) if ident.isdigit() else (0, 0, ident)

        return max(found, key=key)

    def create_audience(
        self, name: str, customer_list_id: str, description: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "audience_type": "CUSTOMER_LIST",
            "rule": {"customer_list_id": str(customer_list_id)},
        }
        if description is not None:
            body["description"] = description
        return self._request(
            "POST",
            "audiences",
            json_body=body,
            description=f"POST audiences (customer list {customer_list_id})",
        )

    # ----------------------------------------------------------------- transport
    def _paginate(self, path: str, description: str) -> Iterator[dict[str, Any]]:
        bookmark: str | None = None
        page = 0
        while True:
            params: dict[str, Any] = {"page_size": self.page_size}
            if bookmark:
                params["bookmark"] = bookmark
            page += 1
            data = self._request(
                "GET", path, params=params, description=f"{description} (page {page})"
            )
            items = data.get("items") or []
            if not isinstance(items, list):
                raise PinterestError(f"{description}: unexpected answer without an items list")
            for item in items:
                if isinstance(item, dict):
                    if "id" in item and item["id"] is not None:
                        item["id"] = str(item["id"])
                    yield item
            next_bookmark = data.get("bookmark")
            if not next_bookmark or next_bookmark == bookmark:
                return
            bookmark = str(next_bookmark)

    def _hint(self, status: int, list_id: str | None, method: str) -> str | None:
        if status == 403:
            return (
                "Check that the token has the ads:write (and ads:read) scope and access to "
                f"ad account {self.ad_account_id}, and that ad_account_id is right"
            )
        if status == 404:
            if list_id is not None:
                return (
                    f"Check the segment_id / customer list id {list_id}: it does not exist in "
                    f"ad account {self.ad_account_id} (or the ad_account_id is wrong)"
                )
            return f"Check ad_account_id ({self.ad_account_id}): Pinterest does not know it"
        if status == 400:
            return (
                "Pinterest rejected the request: check its parameters (list name, list_type, "
                "record format)"
            )
        if status == 409:
            return "The request conflicts with the current state of the object"
        if status == 413:
            return "The request is too large: send fewer records per call"
        return None

    def _request(
        self,
        method: str,
        path: str,
        *,
        description: str,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | bytes | None = None,
        list_id: str | None = None,
    ) -> dict[str, Any]:
        is_write = method != "GET"
        limiter = self.write_limiter if is_write else self.read_limiter
        url = f"{self.api_url}/{self._account_path}/{path}"
        log_path = f"/{self._account_path}/{path}"
        request = HttpRequest(method=method, path=log_path, description=description)
        state = RetryState()
        just_refreshed = False
        auth_refreshes = 0
        while True:
            waited = limiter.acquire()
            token = self.tokens.get()
            with self.stats._lock:
                self.stats.pacer_wait_seconds += waited
                self.stats.token_refreshes = self.tokens.refresh_count
                if is_write:
                    self.stats.writes += 1
                else:
                    self.stats.reads += 1
            state.attempts += 1
            response: requests.Response | None = None
            error: requests.RequestException | None = None
            try:
                encoded = isinstance(json_body, bytes)
                response = self._session().request(
                    method,
                    url,
                    params=params,
                    json=None if encoded else json_body,
                    data=json_body if encoded else None,
                    headers={
                        "Authorization": f"Bearer {token}",
                        **({"Content-Type": "application/json"} if encoded else {}),
                    },
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                error = exc

            if response is not None:
                status = response.status_code
                logger.debug("%s %s -> %s", method, log_path, status)
                if 200 <= status < 300:
                    self._proven_token = token
                    return self._parse(response, description)
                code, api_message = error_fields(response)
                if status == 401:
                    expired_since = token == self._proven_token and auth_refreshes < 3
                    if just_refreshed and not expired_since:
                        raise PinterestAuthError(
                            f"Pinterest refused {description} with a freshly refreshed token",
                            settings=("refresh_token", "client_id", "client_secret"),
                            status=status,
                            code=code,
                            api_message=api_message,
                        )
                    if not self.tokens.can_refresh:
                        raise PinterestAuthError(
                            f"Pinterest refused the access token for {description}",
                            settings=(
                                "access_token",
                                "refresh_token",
                                "client_id",
                                "client_secret",
                            ),
                            status=status,
                            code=code,
                            api_message=api_message,
                        )
                    logger.info("%s %s -> 401; refreshing the access token", method, log_path)
                    self.tokens.refresh(token)
                    auth_refreshes += 1
                    with self.stats._lock:
                        self.stats.token_refreshes = self.tokens.refresh_count
                        self.stats.auth_retries += 1
                    just_refreshed = True
                    continue
                just_refreshed = False
                if 400 <= status < 500 and status not in (408, 429):
                    logger.warning(
                        "%s %s -> %s (code %s: %s)", method, log_path, status, code, api_message
                    )
                    raise PinterestApiError(
                        description,
                        status,
                        code,
                        api_message,
                        self._hint(status, list_id, method),
                    )
                http_response: HttpResponse | None = HttpResponse(
                    status_code=status,
                    headers=dict(response.headers),
                    code=code,
                    message=api_message,
                )
                response.close()
            else:
                assert error is not None
                just_refreshed = False
                http_response = None
                logger.debug("%s %s failed: %s", method, log_path, _describe_error(error))
                if method == "POST" and not _safe_before_send(error):
                    logger.warning(
                        "%s %s failed after the request may have been sent (%s)",
                        method,
                        log_path,
                        _describe_error(error),
                    )
                    raise WriteOutcomeUnknown(description, _describe_error(error)) from None

            decision = self.retry.decide(state, request, http_response, error)
            if decision is None:
                if http_response is not None:
                    raise PinterestApiError(
                        description,
                        http_response.status_code,
                        http_response.code,
                        http_response.message,
                        None,
                    )
                assert error is not None
                raise PinterestError(f"{description} failed: {_describe_error(error)}") from None
            if decision.exhausted:
                logger.error(
                    "Giving up on %s after %d attempt(s), %.1fs waited (last: %s)",
                    description,
                    state.attempts,
                    state.waited,
                    http_response.status_code if http_response else _describe_error(error),
                )
                raise RetryBudgetExhausted(
                    description,
                    attempts=state.attempts,
                    waited=state.waited,
                    last_reason=decision.reason,
                    status=http_response.status_code if http_response else None,
                    code=http_response.code if http_response else None,
                    api_message=http_response.message if http_response else None,
                    last_error=_describe_error(error) if error is not None else None,
                    next_wait=(decision.wait if state.attempts < self.retry.max_attempts else None),
                ) from None
            if decision.reason == "429":
                limiter.pause(decision.wait)
            logger.warning(
                "%s %s -> %s; retry %d in %.2fs (%s)",
                method,
                log_path,
                http_response.status_code if http_response else _describe_error(error),
                state.retries + 1,
                decision.wait,
                decision.reason,
            )
            state.record_retry(decision.reason, decision.wait)
            with self.stats._lock:
                self.stats.retries += 1
                self.stats.retries_by_reason[decision.reason] = (
                    self.stats.retries_by_reason.get(decision.reason, 0) + 1
                )
                self.stats.retry_wait_seconds += decision.wait
            if decision.wait > 0:
                self.retry.sleep(decision.wait)

    @staticmethod
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
