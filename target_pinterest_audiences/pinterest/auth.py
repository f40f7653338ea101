"""Access tokens: bearer token handling and Pinterest continuous refresh.

Pinterest's continuous refresh answers every refresh with a NEW refresh token and
the previous one may stop working, so the newest one is kept in every
:class:`~.token_store.RefreshTokenStore` given (a 0600 file under ``token_dir``,
a database shared by other runs, ...) and preferred over the configured one as long
as the configured refresh token is unchanged. Runs that refresh at the same moment
take turns (each store's ``exclusive()``), and the later one uses the token the
earlier one got. Nothing here ever logs a token, the client secret or a request body.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from .errors import PinterestAuthError, error_fields
from .token_store import FileTokenStore, RefreshTokenStore, StoredRefreshToken

__all__ = ["FileTokenStore", "RefreshTokenStore", "StoredRefreshToken", "TokenManager"]

EXPIRY_WARNING_DAYS = 14
_TOKEN_ATTEMPTS = 3


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class _RefreshRefused(Exception):
    def __init__(self, status: int, code: object, message: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.code = code
        self.message = message


class TokenManager:
    """Hands out the bearer token and refreshes it (thread-safe).

    ``stores``: where the newest refresh token is kept, newest ``issued_at`` wins at start;
    ``token_dir`` is a shorthand for a :class:`FileTokenStore` there (put first).
    """

    def __init__(
        self,
        api_url: str,
        *,
        access_token: str | None = None,
        refresh_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_dir: Path | str | None = None,
        stores: Sequence[RefreshTokenStore] = (),
        logger: logging.Logger | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        user_agent: str = "target-pinterest-audiences",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._access_token = access_token or None
        self._configured_refresh_token = refresh_token or None
        self._client_id = client_id or None
        self._client_secret = client_secret or None
        file_store = [FileTokenStore(token_dir)] if token_dir is not None else []
        self.stores: list[RefreshTokenStore] = [*file_store, *stores]
        self.logger = logger or logging.getLogger(__name__)
        self._timeout = timeout
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self.refresh_count = 0
        self.refresh_token_expires_at: float | None = None
        self._refresh_token = self._configured_refresh_token
        self._refresh_token_issued_at = 0.0  # the configured one: older than any stored
        self.using_stored_refresh_token = False
        self._configured_sha256 = (
            _sha256(self._configured_refresh_token) if self._configured_refresh_token else ""
        )
        newest = self._newest_stored()
        if newest is not None:
            self._use_stored(*newest)

    # ----------------------------------------------------------------- public API
    @property
    def can_refresh(self) -> bool:
        return bool(self._refresh_token and self._client_id and self._client_secret)

    def get(self) -> str:
        """The current bearer token, fetching one first if there is none."""
        with self._lock:
            if self._access_token:
                return self._access_token
            return self._refresh_locked()

    def refresh(self, stale: str | None) -> str:
        """Refresh after ``stale`` was refused; a no-op if another thread already did."""
        with self._lock:
            if self._access_token and self._access_token != stale:
                return self._access_token
            return self._refresh_locked()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __repr__(self) -> str:
        def state(value: str | None) -> str:
            return "'***'" if value else "None"

        return (
            f"TokenManager(api_url={self.api_url!r}, access_token={state(self._access_token)}, "
            f"refresh_token={state(self._refresh_token)}, client_id={state(self._client_id)}, "
            f"client_secret={state(self._client_secret)}, stores={len(self.stores)}, "
            f"refreshes={self.refresh_count})"
        )

    __str__ = __repr__

    # ------------------------------------------------------------------ internals
    def _missing_settings(self) -> tuple[str, ...]:
        missing = []
        if not self._refresh_token:
            missing.append("refresh_token")
        if not self._client_id:
            missing.append("client_id")
        if not self._client_secret:
            missing.append("client_secret")
        return tuple(missing)

    def _refresh_locked(self) -> str:
        missing = self._missing_settings()
        if missing:
            if self._access_token:
                raise PinterestAuthError(
                    "Pinterest refused the access token and it cannot be refreshed "
                    "because refresh credentials are not configured",
                    settings=("access_token", *missing),
                )
            raise PinterestAuthError(
                "No Pinterest access token is configured and none can be obtained",
                settings=("access_token", *missing),
            )
        with contextlib.ExitStack() as held:
            for store in self.stores:  # in list order, so that every process takes them alike
                self._hold(held, store)
            newest = self._newest_stored()
            if newest is not None and newest[0].issued_at > self._refresh_token_issued_at:
                # Another run refreshed meanwhile: the token this one holds may be spent.
                self.logger.info(
                    "Another run refreshed the token meanwhile; using its newer refresh token"
                )
                self._use_stored(*newest)
            return self._exchange_or_fall_back()

    def _exchange_or_fall_back(self) -> str:
        """Exchange the refresh token held; the configured one if Pinterest refuses it."""
        assert self._refresh_token is not None
        try:
            return self._exchange(self._refresh_token)
        except _RefreshRefused as refused:
            configured = self._configured_refresh_token
            if configured and self._refresh_token != configured:
                self.logger.warning(
                    "Pinterest refused the stored refresh token (HTTP %s, code %s: %s); "
                    "falling back to the configured refresh_token",
                    refused.status,
                    refused.code,
                    refused.message,
                )
                self._refresh_token = configured
                self._refresh_token_issued_at = 0.0
                self.using_stored_refresh_token = False
                try:
                    return self._exchange(configured)
                except _RefreshRefused as again:
                    refused = again
            raise self._refused_error(refused) from None

    def _refused_error(self, refused: _RefreshRefused) -> PinterestAuthError:
        if refused.status == 401:
            settings: tuple[str, ...] = ("client_id", "client_secret", "refresh_token")
            what = "Pinterest refused the app credentials or refresh token"
        else:
            settings = ("refresh_token", "client_id")
            what = (
                "Pinterest refused the refresh token (re-authorize the app to get a new "
                "refresh_token if it expired or was revoked)"
            )
        return PinterestAuthError(
            what,
            settings=settings,
            status=refused.status,
            code=refused.code,
            api_message=refused.message,
        )

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = self._user_agent
        return self._session

    def _exchange(self, refresh_token: str) -> str:
        """POST /oauth/token; returns the new access token. Lock held."""
        url = f"{self.api_url}/oauth/token"
        data = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "continuous_refresh": "true",
        }
        assert self._client_id is not None and self._client_secret is not None
        auth = (self._client_id, self._client_secret)
        last: str = ""
        for attempt in range(_TOKEN_ATTEMPTS):
            if attempt:
                self._sleep(min(30.0, 2.0**attempt))
            try:
                response = self._http().post(url, data=data, auth=auth, timeout=self._timeout)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__} contacting the token endpoint"
                self.logger.warning(
                    "POST /oauth/token failed (%s); attempt %d/%d",
                    type(exc).__name__,
                    attempt + 1,
                    _TOKEN_ATTEMPTS,
                )
                continue
            status = response.status_code
            if status in (400, 401, 403):
                code, message = error_fields(response)
                self.logger.warning("POST /oauth/token -> %s (code %s: %s)", status, code, message)
                raise _RefreshRefused(status, code, message)
            if status == 429 or status >= 500:
                code, message = error_fields(response)
                last = f"HTTP {status}, code {code}: {message}"
                self.logger.warning(
                    "POST /oauth/token -> %s (code %s: %s); attempt %d/%d",
                    status,
                    code,
                    message,
                    attempt + 1,
                    _TOKEN_ATTEMPTS,
                )
                continue
            if status >= 300:
                code, message = error_fields(response)
                raise PinterestAuthError(
                    "Unexpected answer from the Pinterest token endpoint",
                    settings=("client_id", "client_secret", "refresh_token"),
                    status=status,
                    code=code,
                    api_message=message,
                )
            return self._accept(response, refresh_token)
        raise PinterestAuthError(
            f"Could not refresh the Pinterest access token ({last})",
            settings=(),
        )

    def _accept(self, response: requests.Response, used_refresh_token: str) -> str:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("access_token"):
            raise PinterestAuthError(
                "The Pinterest token endpoint answered without an access token",
                settings=("client_id", "client_secret", "refresh_token"),
                status=response.status_code,
            )
        self._access_token = str(body["access_token"])
        self.refresh_count += 1
        now = self._wall_clock()
        expires_at: float | None = None
        if body.get("refresh_token_expires_at") is not None:
            with contextlib.suppress(TypeError, ValueError):
                expires_at = float(body["refresh_token_expires_at"])
        if expires_at is None and body.get("refresh_token_expires_in") is not None:
            with contextlib.suppress(TypeError, ValueError):
                expires_at = now + float(body["refresh_token_expires_in"])
        new_refresh = body.get("refresh_token")
        if new_refresh:
            self._refresh_token = str(new_refresh)
            self._refresh_token_issued_at = now
            self.refresh_token_expires_at = expires_at
            self._save(self._refresh_token, expires_at, now)
        elif expires_at is not None and used_refresh_token == self._refresh_token:
            self.refresh_token_expires_at = expires_at
        self.logger.info("Refreshed the Pinterest access token (refresh #%d)", self.refresh_count)
        if expires_at is not None and expires_at - now < EXPIRY_WARNING_DAYS * 86400:
            days = max(0.0, (expires_at - now) / 86400)
            self.logger.warning(
                "The Pinterest refresh token expires in %.1f day(s): re-authorize the app "
                "and put the new refresh_token in the configuration to avoid losing access",
                days,
            )
        return self._access_token

    # ----------------------------------------------------------------- the stores
    def _newest_stored(self) -> tuple[StoredRefreshToken, str] | None:
        """The newest stored token descending from the configured refresh_token, if any,
        and the store's description."""
        if not self._configured_refresh_token:
            return None
        newest: tuple[StoredRefreshToken, str] | None = None
        for store in self.stores:
            try:
                token = store.load()
            except Exception as exc:  # one store down must not stop the run: the others remain
                self.logger.warning(
                    "Could not read the refresh token kept in %s (%s)",
                    store.describe(),
                    type(exc).__name__,
                )
                continue
            if token is None:
                continue
            if token.configured_sha256 != self._configured_sha256:
                self.logger.info(
                    "The configured refresh_token changed since %s was written; not using "
                    "the token kept there",
                    store.describe(),
                )
                continue
            if newest is None or token.issued_at > newest[0].issued_at:
                newest = (token, store.describe())
        return newest

    def _use_stored(self, token: StoredRefreshToken, where: str) -> None:
        self._refresh_token = token.refresh_token
        self._refresh_token_issued_at = token.issued_at
        self.refresh_token_expires_at = token.expires_at
        self.using_stored_refresh_token = True
        self.logger.debug("Using the refresh token kept in %s", where)

    def _hold(self, held: contextlib.ExitStack, store: RefreshTokenStore) -> None:
        """Take ``store``'s turn for refreshing; without it (store down) refresh anyway."""
        try:
            held.enter_context(store.exclusive())
        except Exception as exc:  # refreshing unserialized beats not refreshing at all
            self.logger.warning(
                "Could not lock %s for the token refresh (%s); refreshing without it",
                store.describe(),
                type(exc).__name__,
            )

    def _save(self, refresh_token: str, expires_at: float | None, issued_at: float) -> None:
        if not self._configured_refresh_token:
            return
        token = StoredRefreshToken(
            refresh_token=refresh_token,
            expires_at=expires_at,
            issued_at=issued_at,
            configured_sha256=self._configured_sha256,
        )
        for store in self.stores:
            try:
                store.save(token)
            except Exception as exc:  # the other stores still get it
                self.logger.error(
                    "Could not save the rotated Pinterest refresh token to %s (%s); the next "
                    "run may need a re-authorized refresh_token",
                    store.describe(),
                    type(exc).__name__,
                )
                continue
            self.logger.debug("Saved the rotated refresh token to %s", store.describe())
