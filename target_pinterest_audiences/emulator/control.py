"""The control API under ``/_emulator/``: inspect, seed, configure and inject faults over HTTP,
for tests that run the emulator as its own process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .outcome import Outcome

if TYPE_CHECKING:
    from .server import PinterestEmulator

CONTROL_PREFIX = "/_emulator/"

Query = dict[str, list[str]]


@dataclass(frozen=True)
class Route:
    method: str
    action: str  # the path after CONTROL_PREFIX
    serve: Callable[[PinterestEmulator, Any, Query], Outcome]
    doc: str


def _state(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    return Outcome(200, emulator.state())


def _requests(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    bodies = query.get("bodies", ["0"])[0] not in ("0", "false", "")
    return Outcome(200, {"requests": emulator.request_log(bodies=bodies)})


def _faults(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    return Outcome(200, {"faults": [f.to_json() for f in emulator.faults]})


def _add_fault(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    spec = dict(body)
    kind = spec.pop("kind")
    return Outcome(200, emulator.add_fault(kind, **spec).to_json())


def _clear_faults(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    emulator.clear_faults()
    return Outcome(200, {"ok": True})


def _reset(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    emulator.reset()
    return Outcome(200, {"ok": True})


def _config(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    return Outcome(200, emulator.config())


def _configure(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    emulator.configure(**body)
    return Outcome(200, emulator.config())


def _seed_list(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    list_id = emulator.seed_list(
        str(body["ad_account_id"]),
        str(body["name"]),
        set(body.get("members", [])),
        str(body.get("list_type", "EMAIL")),
    )
    return Outcome(200, {"id": list_id})


def _seed_audience(emulator: PinterestEmulator, body: Any, query: Query) -> Outcome:
    audience_id = emulator.seed_audience(
        str(body["ad_account_id"]),
        str(body["name"]),
        body.get("customer_list_id"),
        audience_type=str(body.get("audience_type", "CUSTOMER_LIST")),
        description=body.get("description"),
    )
    return Outcome(200, {"id": audience_id})


ROUTES = (
    Route("GET", "state", _state, "lists (with members), audiences, request count, faults"),
    Route("GET", "requests", _requests, "the request log (?bodies=1: with request bodies)"),
    Route("GET", "faults", _faults, "the injected fault rules"),
    Route("POST", "faults", _add_fault, '{"kind": ..., "method", "path", "times", "skip", ...}'),
    Route("DELETE", "faults", _clear_faults, "forget the fault rules"),
    Route("POST", "faults/clear", _clear_faults, "forget the fault rules"),
    Route("DELETE", "faults/clear", _clear_faults, "forget the fault rules"),
    Route("POST", "reset", _reset, "forget lists, audiences, requests, faults; restore tokens"),
    Route("GET", "config", _config, "the options that can change at run time"),
    Route("POST", "config", _configure, '{"<option>": value, ...}: change options'),
    Route("POST", "seed_list", _seed_list, '{"ad_account_id", "name", "members", "list_type"}'),
    Route(
        "POST",
        "seed_audience",
        _seed_audience,
        '{"ad_account_id", "name", "customer_list_id", "audience_type", "description"}',
    ),
)


def handle_control(emulator: PinterestEmulator, method: str, target: str, raw: bytes) -> Outcome:
    """Serve one control request (``target`` starts with CONTROL_PREFIX)."""
    parts = urlsplit(target)
    action = parts.path[len(CONTROL_PREFIX) :].strip("/")
    try:
        body: Any = json.loads(raw) if raw else {}
    except ValueError:
        return Outcome(400, {"error": "body is not JSON"})
    route = next((r for r in ROUTES if r.method == method and r.action == action), None)
    if route is None:
        return Outcome(404, {"error": f"no control endpoint {method} {parts.path}"})
    try:
        return route.serve(emulator, body, parse_qs(parts.query))
    except (KeyError, TypeError, ValueError, re.error) as exc:
        return Outcome(400, {"error": f"{type(exc).__name__}: {exc}"})


def describe_routes() -> str:
    """One line per control endpoint, for ``pinterest-emulator --help``."""
    return "\n".join(f"  {r.method:<6} {CONTROL_PREFIX}{r.action:<14} {r.doc}" for r in ROUTES)
