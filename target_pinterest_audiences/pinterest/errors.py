"""Exceptions raised by the Pinterest client.

Messages never contain tokens, the client secret, request bodies or ``records``
content: only the call description (method, path, operation and record count),
HTTP status, Pinterest's error ``code`` and ``message`` and a hint. The end of the
module maps a refusal (a final 4xx answer) to its exception and hint.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

if t.TYPE_CHECKING:
    import requests


def error_fields(response: requests.Response) -> tuple[object, str | None]:
    """Pinterest's error ``code`` and ``message`` from an answer (OAuth's names too)."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code", body.get("error"))
    message = body.get("message", body.get("error_description"))
    return code, (str(message) if message is not None else None)


class PinterestError(Exception):
    """Base class of every error raised by this package."""


#: The setting that names the ad account, unless the caller says which one did
#: (``streams.<name>.ad_account_id`` for a stream's own).
ACCOUNT_SETTING = "ad_account_id"
AD_ACCOUNT_ID_WHERE = "the digits after /advertiser/ in the Ads Manager URL"


def _then(sentence: str, more: str) -> str:
    """``sentence``, then ``more`` as the next sentence (Pinterest's message may end in '.')."""
    return f"{sentence} {more}" if sentence.endswith(".") else f"{sentence}. {more}"


def _pinterest_detail(status: int | None, code: object, api_message: str | None) -> str:
    parts = []
    if status is not None:
        parts.append(f"HTTP {status}")
    if code is not None:
        parts.append(f"code {code}")
    detail = ", ".join(parts)
    if api_message:
        detail = f"{detail}: {api_message}" if detail else api_message
    return detail


class PinterestApiError(PinterestError):
    """Pinterest refused a call with an answer that retrying will not change.

    Attributes: ``call`` (e.g. ``PATCH customer_lists/643 (ADD, 10 records)``),
    ``status`` (HTTP status), ``code`` and ``api_message`` (Pinterest's error
    body fields, ``None`` when absent) and ``hint`` (what the user should check).
    """

    def __init__(
        self,
        call: str,
        status: int,
        code: object = None,
        api_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.call = call
        self.status = status
        self.code = code
        self.api_message = api_message
        self.hint = hint
        msg = f"Pinterest refused {call}: {_pinterest_detail(status, code, api_message)}"
        if hint:
            msg = _then(msg, hint)
        super().__init__(msg)


class PinterestAuthError(PinterestError):
    """Authentication failed; ``settings`` names the configuration settings to fix.

    Attributes: ``settings`` (tuple of setting names), ``status``, ``code``,
    ``api_message`` (``None`` when there was no answer from Pinterest).
    """

    def __init__(
        self,
        message: str,
        *,
        settings: tuple[str, ...] = (),
        status: int | None = None,
        code: object = None,
        api_message: str | None = None,
    ) -> None:
        self.settings = settings
        self.status = status
        self.code = code
        self.api_message = api_message
        detail = _pinterest_detail(status, code, api_message)
        msg = message
        if detail:
            msg = f"{msg} (Pinterest answered {detail})"
        if settings:
            msg = f"{msg}. Check the setting(s): {', '.join(settings)}."
        super().__init__(msg)


class RequestTooLarge(PinterestApiError):
    """Pinterest refused a call as too large (HTTP 413): send its records in smaller calls.

    Raised at once, without retrying, so that the caller can split the call."""


class PinterestScopeError(PinterestAuthError):
    """The token lacks a scope the call needs (401 with code 3), or may not act on the ad
    account (403: Pinterest's "not permitted", code 29): refreshing cannot help.

    Attributes: those of :class:`PinterestAuthError`, plus ``call`` and ``scope``
    (``"ads:read"`` or ``"ads:write"``: the scope this call needed). ``account_setting`` is
    the setting that gave the ad account (``ad_account_id``, or a stream's
    ``streams.<name>.ad_account_id``); a 403 names it first.
    """

    def __init__(
        self,
        call: str,
        *,
        scope: str,
        status: int,
        code: object = None,
        api_message: str | None = None,
        ad_account_id: str,
        account_setting: str = ACCOUNT_SETTING,
    ) -> None:
        self.call = call
        self.scope = scope
        tokens = ("access_token", "refresh_token")
        self.settings = (account_setting, *tokens) if status == 403 else tokens
        self.status = status
        self.code = code
        self.api_message = api_message
        refused = f"Pinterest refused {call}: {_pinterest_detail(status, code, api_message)}"
        scopes = f"the scopes {' and '.join(SCOPES)}"
        if status == 403:
            message = _then(
                refused,
                f"The token may not use ad account {ad_account_id}: check {account_setting} "
                f"({AD_ACCOUNT_ID_WHERE}) and that the Pinterest user who authorized the token "
                f"has access to that ad account. If both are right, the token lacks the {scope} "
                f"scope this call needs: re-authorize the app with {scopes} and configure the "
                "new refresh_token (or access_token).",
            )
        else:
            message = _then(
                refused,
                f"The token lacks the {scope} scope this call needs. Re-authorize the app with "
                f"{scopes} and configure the new refresh_token (or access_token).",
            )
        PinterestError.__init__(self, message)


class RetryBudgetExhausted(PinterestError):
    """A call kept failing with retryable errors until its retry budget ran out.

    Attributes: ``call``, ``attempts``, ``waited`` (seconds spent waiting between
    attempts), ``last_reason`` (``"429"``, ``"5xx"``, ``"connection"``, ``"refused"``,
    ``"timeout"``), ``status``/``code``/``api_message`` of Pinterest's last answer
    (``None`` when the last attempt got no answer) and ``last_error`` (short
    description of the last connection error, if any).
    """

    def __init__(
        self,
        call: str,
        *,
        attempts: int,
        waited: float,
        last_reason: str | None,
        status: int | None = None,
        code: object = None,
        api_message: str | None = None,
        last_error: str | None = None,
        next_wait: float | None = None,
    ) -> None:
        self.call = call
        self.attempts = attempts
        self.waited = waited
        self.last_reason = last_reason
        self.status = status
        self.code = code
        self.api_message = api_message
        self.last_error = last_error
        msg = f"Gave up on {call} after {attempts} attempt(s) and {waited:.1f}s of waiting"
        if next_wait is not None:
            msg += f" (next wait of {next_wait:.1f}s would exceed the retry budget)"
        if status is not None:
            msg += f"; Pinterest's last answer: {_pinterest_detail(status, code, api_message)}"
        elif last_error:
            msg += f"; last error: {last_error}"
        if last_reason == "refused":
            msg += " (check api_url, and that its host can be reached from here)"
        super().__init__(msg)


def _in_words(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


class QuotaExhausted(PinterestError):
    """Pinterest's quota for a category of calls is used up until ``resets_at``.

    Raised when a 429's wait would not fit the retry budget, and from then on by every other
    call of the same category of the same client until the reset time has passed. Attributes:
    ``call``, ``category`` (``"read"`` or ``"write"``), ``resets_at`` (a UTC ``datetime``),
    ``wait_seconds`` (from when the error was made), ``status``/``code``/``api_message`` of
    the answer that said so (``None`` for a call not sent because of an earlier one).
    """

    def __init__(
        self,
        call: str,
        *,
        category: str,
        resets_at: datetime,
        wait_seconds: float,
        status: int | None = None,
        code: object = None,
        api_message: str | None = None,
    ) -> None:
        self.call = call
        self.category = category
        self.resets_at = resets_at
        self.wait_seconds = wait_seconds
        self.status = status
        self.code = code
        self.api_message = api_message
        #: The quota and its reset alone, for the other streams of the run.
        self.headline = (
            f"Pinterest's {category} quota is used up; it resets in {_in_words(wait_seconds)}, "
            f"at {resets_at:%Y-%m-%d %H:%M} UTC. Run again after the reset: the next run "
            "repeats only what is needed"
        )
        if status is not None:
            why = f"Pinterest answered {call} with {_pinterest_detail(status, code, api_message)}"
        else:
            why = f"{call} was not sent: an earlier call found the quota used up"
        super().__init__(f"{self.headline} ({why}).")

    def for_call(self, call: str, *, now: datetime) -> QuotaExhausted:
        """The same quota, reported for another ``call`` that was not sent because of it."""
        return QuotaExhausted(
            call,
            category=self.category,
            resets_at=self.resets_at,
            wait_seconds=max(0.0, (self.resets_at - now).total_seconds()),
        )


class WriteOutcomeUnknown(PinterestError):
    """A create (POST) failed after the request may have reached Pinterest.

    The object may or may not exist now: look it up (by name) before creating
    it again. Attributes: ``call``, ``cause`` (short description of the error).
    """

    def __init__(self, call: str, cause: str) -> None:
        self.call = call
        self.cause = cause
        super().__init__(
            f"{call} failed after the request may have been sent ({cause}); "
            "it may or may not have been applied - look it up before retrying"
        )


class RunStopped(PinterestError):
    """The run was stopped before this call was sent: another call met a wall that every
    call would meet (Pinterest's quota used up, a token without the scopes). ``reason`` says
    which, in the words of the error that stopped the run."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ------------------------------------------------------------------ refusal -> exception
SCOPES = ("ads:read", "ads:write")
PINTEREST_API_URL = "https://api.pinterest.com/v5"
_VERSION_PATH = re.compile(r"/v\d+/?$")


def needed_scope(*, write: bool) -> str:
    """The OAuth scope a call needs: ``ads:write`` for POST/PATCH, ``ads:read`` for GET."""
    return "ads:write" if write else "ads:read"


def is_missing_scope(status: int, code: object) -> bool:
    """Pinterest's answer for a token without the scope: 401 with code 3, or any 403."""
    return status == 403 or (status == 401 and str(code) == "3")


def shown_url(url: str) -> str:
    """``url`` for a message: scheme, host, port and path; never user info or a query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url.split("?")[0]


def api_url_problem(api_url: str) -> str | None:
    """A warning when ``api_url`` does not end in a version path (``/v5``), else ``None``."""
    try:
        path = urlsplit(api_url).path
    except ValueError:
        path = ""
    if _VERSION_PATH.search(path):
        return None
    return (
        f"api_url {shown_url(api_url)} does not end in a version path such as /v5 "
        f"(Pinterest's API is {PINTEREST_API_URL}): its calls will likely be answered 404"
    )


@dataclass(frozen=True)
class Subject:
    """The object a call is about, for hints: ``kind`` is "customer list", "audience" or
    "lookalike" (``id``: its seed audience)."""

    kind: str
    id: str


def _account_not_found_hint(ad_account_id: str, api_url: str, account_setting: str) -> str:
    hint = (
        f"Check {account_setting} ({ad_account_id}) and api_url ({shown_url(api_url)}): "
        "Pinterest does not know this ad account at that address, or not for this token (the "
        f"ad account id is {AD_ACCOUNT_ID_WHERE})"
    )
    if api_url_problem(api_url) is not None:
        hint += "; api_url does not end in a version path"
    return f"{hint}. api_url should end in /v5, as in {PINTEREST_API_URL}"


# How a 404's hint names the object a call was about (default: "<kind> id").
_NAMED_AS = {"customer list": "segment_id / customer list id", "lookalike": "seed audience"}


def refusal_hint(
    status: int,
    *,
    ad_account_id: str,
    api_url: str,
    subject: Subject | None,
    code: object = None,
    account_setting: str = ACCOUNT_SETTING,
) -> str | None:
    """What the user should check when Pinterest refuses a call with ``status`` (and ``code``:
    a 404 with code 2 is Pinterest's "ad account not found", whatever the call was about)."""
    if status == 404:
        if subject is None or str(code) == "2":
            return _account_not_found_hint(ad_account_id, api_url, account_setting)
        what = _NAMED_AS.get(subject.kind, f"{subject.kind} id")
        return (
            f"Check the {what} {subject.id}: it does not exist in ad account "
            f"{ad_account_id} (or {account_setting} is wrong)"
        )
    if status == 400 and subject is not None and subject.kind == "lookalike":
        return "Pinterest rejected the lookalike: check its seed, country and percentage"
    if status == 400:
        return (
            "Pinterest rejected the request: check its parameters (list name, list_type, "
            "record format)"
        )
    if status == 409:
        return "The request conflicts with the current state of the object"
    if status == 413:
        return (
            "The call was too large for Pinterest: send its records in smaller calls "
            "(records_per_request is the upper bound)"
        )
    return None


def refusal_error(
    call: str,
    status: int,
    code: object,
    api_message: str | None,
    *,
    write: bool,
    ad_account_id: str,
    api_url: str,
    subject: Subject | None,
    account_setting: str = ACCOUNT_SETTING,
) -> PinterestError:
    """The exception for an answer that retrying will not change (a 4xx but 408 and 429,
    or a 401 that refreshing the token cannot cure). ``account_setting`` names the setting
    that gave ``ad_account_id`` in hints about the ad account."""
    if is_missing_scope(status, code):
        return PinterestScopeError(
            call,
            scope=needed_scope(write=write),
            status=status,
            code=code,
            api_message=api_message,
            ad_account_id=ad_account_id,
            account_setting=account_setting,
        )
    hint = refusal_hint(
        status,
        ad_account_id=ad_account_id,
        api_url=api_url,
        subject=subject,
        code=code,
        account_setting=account_setting,
    )
    error_type = RequestTooLarge if status == 413 else PinterestApiError
    return error_type(call, status, code, api_message, hint)
