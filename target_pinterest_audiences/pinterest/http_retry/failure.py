"""What a call that got no answer ran into (connect failed, or later).

Read from the exception chain ``requests`` raises (``ConnectionError`` wrapping urllib3's
``MaxRetryError`` wrapping ``NewConnectionError`` wrapping the ``OSError``). Never the
exception's text: it holds the URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests
import urllib3.exceptions


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it wraps (args, ``reason``, cause, context)."""
    seen: set[int] = set()
    stack: list[object] = [error]
    while stack:
        exc = stack.pop()
        if not isinstance(exc, BaseException) or id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        stack.extend(getattr(exc, "args", ()))
        stack.append(getattr(exc, "reason", None))
        stack.append(exc.__cause__)
        stack.append(exc.__context__)


def never_sent(error: BaseException) -> bool:
    """True when the request certainly never reached the server (the connection failed)."""
    return any(
        isinstance(
            exc,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | requests.exceptions.ConnectTimeout
            | ConnectionRefusedError,
        )
        for exc in _chain(error)
    )


def describe_failure(error: BaseException | None) -> str:
    """A short, value-free description of what went wrong."""
    if error is None:
        return "no answer"
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(error, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection error"
    return type(error).__name__
