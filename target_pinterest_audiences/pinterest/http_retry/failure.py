"""What a call that got no answer ran into: refused, unresolvable, reset, timed out.

Read from the exception chain ``requests`` raises (``ConnectionError`` wrapping urllib3's
``MaxRetryError`` wrapping ``NewConnectionError`` wrapping the ``OSError``). Never the
exception's text: it holds the URL.
"""

from __future__ import annotations

import http.client
import socket
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
            | ConnectionRefusedError
            | socket.gaierror,
        )
        for exc in _chain(error)
    )


def refused(error: BaseException) -> bool:
    """True when nothing answers at the address: connection refused, or no such host name.

    Unlike a reset or a timeout, waiting rarely cures these: a wrong ``api_url`` or a proxy
    that is down."""
    return any(
        isinstance(
            exc, ConnectionRefusedError | socket.gaierror | urllib3.exceptions.NameResolutionError
        )
        for exc in _chain(error)
    )


def describe_failure(error: BaseException | None, endpoint: str) -> str:
    """A short, value-free description naming ``endpoint`` (``host:port``)."""
    if error is None:
        return f"no answer from {endpoint}"
    chain = list(_chain(error))

    def has(kind: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
        return any(isinstance(exc, kind) for exc in chain)

    if has((socket.gaierror, urllib3.exceptions.NameResolutionError)):
        return f"could not connect to {endpoint}: the host name does not resolve"
    if has(ConnectionRefusedError):
        return f"could not connect to {endpoint}: connection refused"
    if has((requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return f"could not connect to {endpoint}: connect timeout"
    if has((requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)):
        return f"read timeout waiting for {endpoint}"
    if has(ConnectionResetError):
        return f"connection to {endpoint} was reset"
    if has((http.client.RemoteDisconnected, urllib3.exceptions.ProtocolError)):
        return f"connection to {endpoint} was closed without an answer"
    if isinstance(error, requests.exceptions.ConnectionError):
        return f"connection error with {endpoint}"
    return f"{type(error).__name__} talking to {endpoint}"
