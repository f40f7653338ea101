"""Schemathesis hooks for the emulator check (``schemathesis.toml`` names this file)."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.auths import apply_basic_auth


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """The examples phase also refreshes with the emulator's initial refresh token.

    Pinterest's file has no example of the token call, and a generated body almost never
    carries a refresh token the server issued: without this case no token call succeeds, and
    its 200 answer is never checked. Only the examples phase gets it; the other phases keep
    building on generated bodies (a schema example would become their template, and then the
    token call without credentials would only ever be tried with a valid body).
    """
    operation = context.operation
    if operation is not None and operation.path == "/oauth/token":
        case = operation.Case(
            body={"grant_type": "refresh_token", "refresh_token": "test-refresh-token"},
            media_type="application/x-www-form-urlencoded",
        )
        # A case added here is sent as made: the app's credentials, as in schemathesis.toml.
        apply_basic_auth(case, "test-client-id", "test-client-secret")
        examples.append(case)
