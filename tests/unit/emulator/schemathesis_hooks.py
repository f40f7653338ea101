"""Schemathesis hooks for the emulator check (``schemathesis.toml`` names this file)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests
import schemathesis
from jsonschema import Draft4Validator
from schemathesis.auths import apply_basic_auth
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

from target_pinterest_audiences.emulator.spec import load_spec_document


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


# ---- Two findings that are not the emulator's fault, each dropped only where the call itself
# shows it (test_schemathesis.py tests both ways, against the emulator's real answers).
#
# The stateful phase chains calls by links schemathesis infers from the spec, among them an
# audience's `rule.customer_list_id` (in an answer) -> the `customer_list_id` of the customer
# list calls (in their path). Pinterest's file lets an audience's rule carry a `customer_list_id`
# of any length, and the emulator keeps the rule of a VISITOR, ENGAGEMENT or ACTALIKE audience
# as sent; carried into a path whose own schema says at most 18 digits, such a value makes a
# request that is not schema-valid, which schemathesis still counts as positive.

_DOCUMENT = load_spec_document()  # Pinterest's file, as published: not the emulator's checks
AUDIENCE = "/ad_accounts/{ad_account_id}/audiences/{audience_id}"


def _resolve_ref(ref: str) -> Any:
    node: Any = _DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def path_parameters_breaking_the_spec(method: str, path: str, values: dict[str, Any]) -> set[str]:
    """The path parameters of a call whose values the spec's own schema for them refuses
    (checked here with jsonschema from Pinterest's file, not with the emulator's code)."""
    item = _DOCUMENT["paths"][path]
    broken = set()
    for parameter in [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]:
        while "$ref" in parameter:
            parameter = _resolve_ref(parameter["$ref"])
        name = parameter["name"]
        valid = Draft4Validator(parameter["schema"]).is_valid
        if parameter["in"] == "path" and name in values and not valid(values[name]):
            broken.add(name)
    return broken


def _answer(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def refused_for_a_path_the_spec_refuses(failure: Any, case: Any, response: Any) -> bool:
    """ST202 "Schema-valid request rejected" for a call that was not schema-valid: a value in
    its path breaks the spec's schema for that parameter, and the emulator's 400 (its spec
    check: ``METHOD path (operation): problem; problem``) names that and nothing else."""
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 400:
        return False
    broken = path_parameters_breaking_the_spec(case.method, case.path, case.path_parameters or {})
    _, found, problems = str(_answer(response).get("message", "")).partition("): ")
    return (
        bool(broken)
        and bool(found)
        and all(
            any(problem.startswith(f"path parameter {name}: ") for name in broken)
            for problem in problems.split("; ")
        )
    )


def update_naming_a_missing_list(failure: Any, case: Any, response: Any) -> bool:
    """ST302 "Created resource not found" for an audience's update answered 404 because its
    body's `rule.customer_list_id` names no customer list of the account (the emulator's
    "Customer list X not found.", as for a create), while the audience is there. The hook asks
    the emulator again, as a client would: the audience answers 200, the list does not."""
    if not (
        isinstance(failure, EnsureResourceAvailability)
        and response.status_code == 404
        and (case.method, case.path) == ("PATCH", AUDIENCE)
        and isinstance(case.body, dict)
        and isinstance(case.body.get("rule"), dict)
    ):
        return False
    list_id = str(case.body["rule"].get("customer_list_id"))
    if _answer(response) != {"code": 404, "message": f"Customer list {list_id} not found."}:
        return False
    audience_url = str(response.request.url)
    account_url = audience_url.rsplit("/audiences/", 1)[0]
    auth = {"Authorization": str(response.request.headers.get("Authorization", ""))}
    audience_there = requests.get(audience_url, headers=auth, timeout=30).status_code == 200
    list_url = f"{account_url}/customer_lists/{quote(list_id, safe='')}"
    list_there = requests.get(list_url, headers=auth, timeout=30).status_code == 200
    return audience_there and not list_there


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Every finding fails the run but those two (the run's summary counts them as filtered)."""
    return not (
        refused_for_a_path_the_spec_refuses(failure, case, response)
        or update_naming_a_missing_list(failure, case, response)
    )
