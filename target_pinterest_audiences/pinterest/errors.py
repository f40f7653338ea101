"""Exceptions raised by the Pinterest client.

Messages never contain tokens, the client secret, request bodies or ``records``
content: only the call description (method, path, operation and record count),
HTTP status, Pinterest's error ``code`` and ``message`` and a hint. The end of the
module maps a refusal (a final 4xx answer) to its exception and hint.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

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
            msg = f"{msg}. {hint}"
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
            msg = f"{msg}. Check the setting(s): {', '.join(settings)}"
        super().__init__(msg)


class RetryBudgetExhausted(PinterestError):
    """A call kept failing with retryable errors until its retry budget ran out.

    Attributes: ``call``, ``attempts``, ``waited`` (seconds spent waiting between
    attempts), ``last_reason`` (``"429"``, ``"5xx"``, ``"connection"``,
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
        super().__init__(msg)


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


# ------------------------------------------------------------------ refusal -> exception
@dataclass(frozen=True)
class Subject:
    """The object a call is about, for hints: ``kind`` is "customer list" or "audience"."""

    kind: str
    id: str


def refusal_hint(status: int, *, ad_account_id: str, subject: Subject | None) -> str | None:
    """What the user should check when Pinterest refuses a call with ``status``."""
    if status == 403:
        return (
            "Check that the token has the ads:write (and ads:read) scope and access to "
            f"ad account {ad_account_id}, and that ad_account_id is right"
        )
    if status == 404:
        if subject is not None and subject.kind == "customer list":
            return (
                f"Check the segment_id / customer list id {subject.id}: it does not exist in "
                f"ad account {ad_account_id} (or the ad_account_id is wrong)"
            )
        if subject is not None:
            return (
                f"Check the {subject.kind} id {subject.id}: it does not exist in "
                f"ad account {ad_account_id} (or the ad_account_id is wrong)"
            )
        return f"Check ad_account_id ({ad_account_id}): Pinterest does not know it"
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


def refusal_error(
    call: str,
    status: int,
    code: object,
    api_message: str | None,
    *,
    ad_account_id: str,
    subject: Subject | None,
) -> PinterestError:
    """The exception for an answer that retrying will not change (a 4xx other than 401)."""
    hint = refusal_hint(status, ad_account_id=ad_account_id, subject=subject)
    return PinterestApiError(call, status, code, api_message, hint)
