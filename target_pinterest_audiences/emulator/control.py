"""The control API under ``/_emulator/``: inspect, seed, configure and inject faults over HTTP,
for tests that run the emulator as its own process (``pinterest-emulator``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .outcome import Outcome

if TYPE_CHECKING:
    from .server import PinterestEmulator

CONTROL_PREFIX = "/_emulator/"
OK = {"ok": True}


@dataclass
class ControlRequest:
    body: Any
    query: dict[str, list[str]]
    path: dict[str, str] = field(default_factory=dict)  # the {name} parts of the route


Serve = Callable[["PinterestEmulator", ControlRequest], Outcome]


@dataclass(frozen=True)
class Route:
    method: str
    action: str  # the path after CONTROL_PREFIX; "{name}" matches one segment
    serve: Serve
    doc: str

    def match(self, method: str, action: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.action))
        found = re.fullmatch(pattern, action)
        return found.groupdict() if found else None


def _ok(action: Callable[[PinterestEmulator, ControlRequest], object]) -> Serve:
    def serve(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
        action(emulator, request)
        return Outcome(200, dict(OK))

    return serve


def _requests(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    bodies = request.query.get("bodies", ["0"])[0] not in ("0", "false", "")
    return Outcome(200, {"requests": emulator.request_log(bodies=bodies)})


def _one_list(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    found = emulator.list_state(request.path["id"])
    if found is None:
        return Outcome(404, {"error": f"no customer list {request.path['id']}"})
    return Outcome(200, found)


def _add_fault(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    spec = dict(request.body)
    kind = spec.pop("kind")
    return Outcome(200, emulator.add_fault(kind, **spec).to_json())


def _configure(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    emulator.configure(**request.body)
    return Outcome(200, emulator.config())


def _seed_list(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    body = request.body
    list_id = emulator.seed_list(
        str(body["ad_account_id"]),
        str(body["name"]),
        set(body.get("members", [])),
        str(body.get("list_type", "EMAIL")),
    )
    return Outcome(200, {"id": list_id})


def _seed_audience(emulator: PinterestEmulator, request: ControlRequest) -> Outcome:
    body = request.body
    audience_id = emulator.seed_audience(
        str(body["ad_account_id"]),
        str(body["name"]),
        body.get("customer_list_id"),
        audience_type=str(body.get("audience_type", "CUSTOMER_LIST")),
        description=body.get("description"),
        status=body.get("status"),
    )
    return Outcome(200, {"id": audience_id})


def _add_token(emulator: PinterestEmulator, request: ControlRequest) -> None:
    body = request.body
    scope, accounts = body.get("scope"), body.get("ad_accounts")
    if "access_token" in body:
        emulator.add_access_token(str(body["access_token"]), scope=scope, ad_accounts=accounts)
    if "refresh_token" in body:
        emulator.add_refresh_token(str(body["refresh_token"]), scope=scope, ad_accounts=accounts)
    if "access_token" not in body and "refresh_token" not in body:
        raise KeyError("access_token or refresh_token")


def _unusable(emulator: PinterestEmulator, request: ControlRequest) -> None:
    body = request.body
    options = {k: body[k] for k in ("code", "message") if k in body}
    emulator.declare_unusable(list(body["records"]), **options)


ROUTES = (
    Route(
        "GET",
        "state",
        lambda e, r: Outcome(200, e.state()),
        "lists (members, matched_count, status), audiences, quota, faults...",
    ),
    Route("GET", "lists/{id}", _one_list, "one list: members, matched_count, status..."),
    Route("GET", "requests", _requests, "the request log (?bodies=1: with request bodies)"),
    Route("POST", "reset", _ok(lambda e, r: e.reset()), "forget everything; restore tokens"),
    Route("GET", "config", lambda e, r: Outcome(200, e.config()), "the run-time options"),
    Route("POST", "config", _configure, '{"<option>": value, ...}: change options'),
    Route(
        "GET",
        "faults",
        lambda e, r: Outcome(200, {"faults": [f.to_json() for f in e.faults]}),
        "the injected fault rules",
    ),
    Route("POST", "faults", _add_fault, '{"kind", "method", "path", "times", "skip", ...}'),
    Route("DELETE", "faults", _ok(lambda e, r: e.clear_faults()), "forget the fault rules"),
    Route("POST", "faults/clear", _ok(lambda e, r: e.clear_faults()), "the same"),
    Route("DELETE", "faults/clear", _ok(lambda e, r: e.clear_faults()), "the same"),
    Route("POST", "seed_list", _seed_list, '{"ad_account_id", "name", "members", "list_type"}'),
    Route(
        "POST",
        "seed_audience",
        _seed_audience,
        '{"ad_account_id", "name", "customer_list_id", "status": e.g. REMOVED}',
    ),
    Route(
        "POST",
        "tokens",
        _ok(_add_token),
        '{"access_token" or "refresh_token", "scope", "ad_accounts"}',
    ),
    Route(
        "POST",
        "tokens/revoke",
        _ok(lambda e, r: e.revoke_access_token(str(r.body["access_token"]))),
        '{"access_token"}: no longer valid',
    ),
    Route(
        "POST",
        "unusable_records",
        _ok(_unusable),
        '{"records": [...], "code", "message"}: uploads leave them out',
    ),
    Route(
        "POST",
        "matching/finish",
        _ok(lambda e, r: e.finish_matching()),
        "every list's matching ends now",
    ),
    Route(
        "POST",
        "quota/new_day",
        _ok(lambda e, r: e.new_day()),
        "the emulated day ends now (the daily quota is whole again)",
    ),
)


def handle_control(emulator: PinterestEmulator, method: str, target: str, raw: bytes) -> Outcome:
    """Serve one control request (``target`` starts with CONTROL_PREFIX): 404 for an unknown
    endpoint, 405 with ``Allow`` for a known one asked with another method."""
    parts = urlsplit(target)
    action = parts.path[len(CONTROL_PREFIX) :].strip("/")
    for route in ROUTES:
        path = route.match(method, action)
        if path is None:
            continue
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            return Outcome(400, {"error": "body is not JSON"})
        try:
            return route.serve(emulator, ControlRequest(body, parse_qs(parts.query), path))
        except (KeyError, TypeError, ValueError, re.error) as exc:
            return Outcome(400, {"error": f"{type(exc).__name__}: {exc}"})
    allowed = sorted({r.method for r in ROUTES if r.match(r.method, action) is not None})
    if allowed:
        return Outcome(
            405,
            {"error": f"{method} is not allowed on {parts.path}; allowed: {', '.join(allowed)}"},
            headers={"Allow": ", ".join(allowed)},
        )
    return Outcome(404, {"error": f"no control endpoint {method} {parts.path}"})


def describe_routes() -> str:
    """One line per control endpoint, for ``pinterest-emulator --help``."""
    return "\n".join(f"  {r.method:<6} {CONTROL_PREFIX}{r.action:<18} {r.doc}" for r in ROUTES)
