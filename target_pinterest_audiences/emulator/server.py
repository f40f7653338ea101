"""A local Pinterest API v5 emulator: a real HTTP server with in-memory state.

It serves the customer-list, audience and OAuth token operations of the vendored
OpenAPI description, validates every request (and every response it sends)
against that description, records a request log, and can inject faults (HTTP
errors with rate-limit headers, dropped connections before/after a write,
latency, access-token expiry) so clients' retry, crash-safety and token-refresh
code can be tested over real sockets.

Nothing here logs request bodies or tokens.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .spec import BASE_PATH, Operation, Spec, parse_body

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
DEFAULT_ACCESS_TOKEN = "test-access-token"  # noqa: S105 - a fixture value
DEFAULT_REFRESH_TOKEN = "test-refresh-token"  # noqa: S105 - a fixture value
DEFAULT_CLIENT_ID = "test-client-id"
DEFAULT_CLIENT_SECRET = "test-client-secret"  # noqa: S105 - a fixture value
SIXTY_DAYS = 60 * 24 * 3600
ACCESS_TOKEN_EXPIRES_IN = 30 * 24 * 3600
FAULT_KINDS = ("status", "drop_before", "drop_after", "latency", "expire_token")
TOO_SMALL_CODE = 2613
AUTH_FAILED = {"code": 2, "message": "Authentication failed."}
_FIRST_ID = 549755813888
_STATE_VERSION = 1

_Json = dict[str, Any]


@dataclass
class RecordedRequest:
    """One request as the emulator saw it (never holds a token)."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any
    status: int  # 0 when the connection was dropped without any response
    time: float
    fault: str | None = None
    auth: str | None = None  # "bearer" / "basic" / None: only whether one was sent
    operation: str | None = None

    def to_json(self, bodies: bool = False) -> _Json:
        data = asdict(self)
        if not bodies and isinstance(self.body, dict):
            data["body"] = _summarize_body(self.body)
        return data


def _summarize_body(body: _Json) -> _Json:
    out: _Json = {}
    for key, value in body.items():
        if key == "records" and isinstance(value, str):
            out["records_count"] = len([r for r in value.split(",") if r.strip()])
            out[key] = "<omitted>"
        else:
            out[key] = value
    return out


@dataclass
class FaultRule:
    """A fault that fires ``times`` times (None: forever) after skipping ``skip`` matches."""

    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    skip: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.kind == "status" and "status" not in self.params:
            raise ValueError("a 'status' fault needs status=<HTTP status>")
        if self.kind == "latency" and "seconds" not in self.params:
            raise ValueError("a 'latency' fault needs seconds=<float>")
        self._regex = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self._regex is None or self._regex.search(path) is not None

    def take(self) -> bool:
        """Count one matching request; True when the fault fires for it."""
        if self.seen < self.skip:
            self.seen += 1
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.seen += 1
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_json(self) -> _Json:
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "skip": self.skip,
            "params": self.params,
            "fired": self.fired,
        }


@dataclass
class _CustomerList:
    id: str
    ad_account_id: str
    name: str
    list_type: str
    members: set[str]
    created_time: int
    updated_time: int
    num_batches: int = 1
    num_uploaded_user_records: int = 0
    num_removed_user_records: int = 0


@dataclass
class _Audience:
    id: str
    ad_account_id: str
    name: str
    audience_type: str
    rule: _Json
    description: str | None
    created_timestamp: int
    updated_timestamp: int
    status: str = "READY"


@dataclass
class _Outcome:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _ClientGone(Exception):
    """The client closed the connection before its request body fully arrived."""


def _split_records(records: str) -> list[str]:
    items = records.split(",")
    if not any(space in records for space in " \t\r\n"):  # the usual body: no strip needed
        return [item for item in items if item]
    return [item for item in (r.strip() for r in items) if item]


def _encode_bookmark(payload: _Json) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bookmark(bookmark: str) -> _Json:
    try:
        padded = bookmark + "=" * (-len(bookmark) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _ApiError(400, 1, "Invalid bookmark.") from exc
    if not isinstance(data, dict):
        raise _ApiError(400, 1, "Invalid bookmark.")
    return data


class PinterestEmulator:
    """In-memory Pinterest API v5 (customer lists, audiences, OAuth token) over HTTP."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        page_size: int = 2,
        min_audience_size: int = 0,
        access_tokens: set[str] | frozenset[str] | None = None,
        refresh_tokens: set[str] | frozenset[str] | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token_expires_in: int = SIXTY_DAYS,
        token_lifetime: int | None = None,
        latency: float = 0.0,
        scope: str = "ads:read,ads:write",
        record_bodies: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.page_size = page_size
        self.min_audience_size = min_audience_size
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token_expires_in = refresh_token_expires_in
        self.latency = latency
        self.scope = scope
        self.record_bodies = record_bodies
        self._initial_access = set(
            access_tokens if access_tokens is not None else {DEFAULT_ACCESS_TOKEN}
        )
        self._initial_refresh = set(
            refresh_tokens if refresh_tokens is not None else {DEFAULT_REFRESH_TOKEN}
        )
        self._token_lifetime = token_lifetime
        self.spec = Spec()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []
        self.faults_fired: list[tuple[str, str, str]] = []
        self._faults: list[FaultRule] = []
        self._fault_seq = 0
        self._next_id = _FIRST_ID
        self._lists: dict[str, dict[str, _CustomerList]] = {}
        self._audiences: dict[str, dict[str, _Audience]] = {}
        self._access: dict[str, int] = {}  # token -> successful calls made with it
        self._refresh: dict[str, int] = {}  # token -> expires_at (unix seconds)
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL of the API (``http://host:port/v5``): the target's ``api_url``."""
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PinterestEmulator:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.emulator = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"pinterest-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("pinterest emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PinterestEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ configuration

    def reset(self) -> None:
        """Forget all lists, audiences, requests, violations and faults; restore tokens."""
        with self._lock:
            self.requests.clear()
            self.spec_violations.clear()
            self.faults_fired.clear()
            self._faults.clear()
            self._next_id = _FIRST_ID
            self._lists.clear()
            self._audiences.clear()
            self._access = dict.fromkeys(self._initial_access, 0)
            expires = int(time.time()) + self.refresh_token_expires_in
            self._refresh = dict.fromkeys(self._initial_refresh, expires)

    def set_token_lifetime(self, calls: int | None) -> None:
        """Access tokens expire after ``calls`` successful authenticated calls (None: never).

        Counting restarts now for the tokens that are currently valid.
        """
        with self._lock:
            self._token_lifetime = calls
            for token in self._access:
                self._access[token] = 0

    @property
    def token_lifetime(self) -> int | None:
        return self._token_lifetime

    def add_fault(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
        skip: int = 0,
        **params: Any,
    ) -> FaultRule:
        """Inject a fault for requests matching method and ``path`` (regex, searched)."""
        with self._lock:
            self._fault_seq += 1
            rule = FaultRule(
                kind=kind,
                method=method.upper() if method else None,
                path=path,
                times=times,
                skip=skip,
                params=dict(params),
                id=self._fault_seq,
            )
            self._faults.append(rule)
            return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        with self._lock:
            return list(self._faults)

    def configure(self, **options: Any) -> None:
        """Change page_size, min_audience_size, latency, token_lifetime or
        refresh_token_expires_in."""
        with self._lock:
            for key, value in options.items():
                if key == "token_lifetime":
                    self.set_token_lifetime(None if value is None else int(value))
                elif key in ("page_size", "min_audience_size", "refresh_token_expires_in"):
                    setattr(self, key, int(value))
                elif key == "latency":
                    self.latency = float(value)
                else:
                    raise ValueError(f"unknown emulator option {key!r}")

    def config(self) -> _Json:
        with self._lock:
            return {
                "page_size": self.page_size,
                "min_audience_size": self.min_audience_size,
                "latency": self.latency,
                "token_lifetime": self._token_lifetime,
                "refresh_token_expires_in": self.refresh_token_expires_in,
            }

    # ------------------------------------------------------------------ tokens (for tests)

    def valid_access_tokens(self) -> set[str]:
        with self._lock:
            return set(self._access)

    def valid_refresh_tokens(self) -> set[str]:
        now = int(time.time())
        with self._lock:
            return {t for t, exp in self._refresh.items() if exp > now}

    def add_access_token(self, token: str) -> None:
        with self._lock:
            self._access[token] = 0

    def revoke_access_token(self, token: str) -> None:
        with self._lock:
            self._access.pop(token, None)

    # ------------------------------------------------------------------ inspection

    def lists(self, ad_account_id: str) -> list[_Json]:
        """Customer lists of an ad account, ascending by id (API view + list_type + size)."""
        with self._lock:
            lists = sorted(self._lists.get(ad_account_id, {}).values(), key=lambda c: int(c.id))
            return [
                {**self._list_view(c), "list_type": c.list_type, "size": len(c.members)}
                for c in lists
            ]

    def members(self, ad_account_id: str, list_id: str) -> set[str]:
        with self._lock:
            try:
                return set(self._lists[ad_account_id][list_id].members)
            except KeyError:
                raise KeyError(
                    f"no customer list {list_id} in ad account {ad_account_id}"
                ) from None

    def audiences(self, ad_account_id: str) -> list[_Json]:
        with self._lock:
            found = sorted(self._audiences.get(ad_account_id, {}).values(), key=lambda a: int(a.id))
            return [self._audience_view(a) for a in found]

    def seed_list(
        self,
        ad_account_id: str,
        name: str,
        members: set[str] | frozenset[str] | list[str],
        list_type: str = "EMAIL",
    ) -> str:
        with self._lock:
            return self._create_list(ad_account_id, name, list_type, set(members)).id

    def seed_audience(
        self,
        ad_account_id: str,
        name: str,
        customer_list_id: str | None = None,
        *,
        audience_type: str = "CUSTOMER_LIST",
        description: str | None = None,
        rule: _Json | None = None,
    ) -> str:
        rule = dict(rule or {})
        if customer_list_id is not None:
            rule["customer_list_id"] = customer_list_id
        with self._lock:
            return self._create_audience(ad_account_id, name, audience_type, rule, description).id

    def state(self) -> _Json:
        """Everything, JSON-ready: lists with member counts and sorted members, audiences..."""
        with self._lock:
            lists: list[_Json] = []
            for account in sorted(self._lists):
                for c in sorted(self._lists[account].values(), key=lambda c: int(c.id)):
                    lists.append(
                        {
                            **self._list_view(c),
                            "list_type": c.list_type,
                            "member_count": len(c.members),
                            "members": sorted(c.members),
                        }
                    )
            audiences = [
                self._audience_view(a)
                for account in sorted(self._audiences)
                for a in sorted(self._audiences[account].values(), key=lambda a: int(a.id))
            ]
            return {
                "lists": lists,
                "audiences": audiences,
                "request_count": len(self.requests),
                "spec_violations": list(self.spec_violations),
                "faults_fired": [list(f) for f in self.faults_fired],
                "faults": [f.to_json() for f in self._faults],
                "config": self.config(),
            }

    # ------------------------------------------------------------------ persistence

    def dump_state(self) -> _Json:
        """Persistent state (lists, audiences, tokens, id counter) for ``load_state``."""
        with self._lock:
            return {
                "version": _STATE_VERSION,
                "next_id": self._next_id,
                "lists": [
                    {**asdict(c), "members": sorted(c.members)}
                    for account in self._lists.values()
                    for c in account.values()
                ],
                "audiences": [asdict(a) for acc in self._audiences.values() for a in acc.values()],
                "access_tokens": dict(self._access),
                "refresh_tokens": dict(self._refresh),
            }

    def load_state(self, data: _Json) -> None:
        with self._lock:
            if data.get("version") != _STATE_VERSION:
                raise ValueError("unsupported emulator state file version")
            self._lists.clear()
            self._audiences.clear()
            for raw in data.get("lists", []):
                c = _CustomerList(**{**raw, "members": set(raw["members"])})
                self._lists.setdefault(c.ad_account_id, {})[c.id] = c
            for raw in data.get("audiences", []):
                a = _Audience(**raw)
                self._audiences.setdefault(a.ad_account_id, {})[a.id] = a
            self._next_id = int(data.get("next_id", _FIRST_ID))
            self._access = {str(k): int(v) for k, v in data.get("access_tokens", {}).items()}
            self._refresh = {str(k): int(v) for k, v in data.get("refresh_tokens", {}).items()}

    def save_state_file(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.dump_state()), encoding="utf-8")
        tmp.replace(target)

    def load_state_file(self, path: str | Path) -> None:
        self.load_state(json.loads(Path(path).read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ views

    def _list_view(self, c: _CustomerList) -> _Json:
        too_small = len(c.members) < self.min_audience_size
        return {
            "ad_account_id": c.ad_account_id,
            "created_time": c.created_time,
            "id": c.id,
            "name": c.name,
            "num_batches": c.num_batches,
            "num_removed_user_records": c.num_removed_user_records,
            "num_uploaded_user_records": c.num_uploaded_user_records,
            "status": "TOO_SMALL" if too_small else "READY",
            "type": "customerlist",
            "updated_time": c.updated_time,
            "exceptions": {},
        }

    def _audience_view(self, a: _Audience) -> _Json:
        size: int | None = None
        list_id = a.rule.get("customer_list_id")
        if a.audience_type == "CUSTOMER_LIST" and isinstance(list_id, str):
            c = self._lists.get(a.ad_account_id, {}).get(list_id)
            size = len(c.members) if c is not None else 0
        return {
            "ad_account_id": a.ad_account_id,
            "audience_type": a.audience_type,
            "created_timestamp": a.created_timestamp,
            "description": a.description,
            "id": a.id,
            "name": a.name,
            "rule": dict(a.rule),
            "size": size,
            "status": a.status,
            "type": "audience",
            "updated_timestamp": a.updated_timestamp,
        }

    # ------------------------------------------------------------------ state changes

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _create_list(
        self, account: str, name: str, list_type: str, members: set[str]
    ) -> _CustomerList:
        now = int(time.time())
        c = _CustomerList(
            id=self._new_id(),
            ad_account_id=account,
            name=name,
            list_type=list_type,
            members=members,
            created_time=now,
            updated_time=now,
            num_uploaded_user_records=len(members),
        )
        self._lists.setdefault(account, {})[c.id] = c
        return c

    def _create_audience(
        self, account: str, name: str, audience_type: str, rule: _Json, description: str | None
    ) -> _Audience:
        now = int(time.time())
        a = _Audience(
            id=self._new_id(),
            ad_account_id=account,
            name=name,
            audience_type=audience_type,
            rule=dict(rule),
            description=description,
            created_timestamp=now,
            updated_timestamp=now,
        )
        self._audiences.setdefault(account, {})[a.id] = a
        return a

    def _get_list(self, account: str, list_id: str) -> _CustomerList:
        c = self._lists.get(account, {}).get(list_id)
        if c is None:
            raise _ApiError(404, 404, f"Customer list {list_id} not found.")
        return c

    def _get_audience(self, account: str, audience_id: str) -> _Audience:
        a = self._audiences.get(account, {}).get(audience_id)
        if a is None:
            raise _ApiError(404, 2601, f"Audience {audience_id} not found.")
        return a

    # ------------------------------------------------------------------ operations

    def _page(self, kind: str, account: str, ids: list[str], query: _Json) -> tuple[list[str], Any]:
        order = str(query.get("order", "ASCENDING"))
        size = int(query.get("page_size", self.page_size))
        ordered = sorted(ids, key=int, reverse=order == "DESCENDING")
        bookmark = query.get("bookmark")
        if bookmark:
            mark = _decode_bookmark(str(bookmark))
            if mark.get("k") != kind or mark.get("a") != account or mark.get("o") != order:
                raise _ApiError(400, 1, "Invalid bookmark for this request.")
            after = int(mark.get("after", 0))
            if order == "DESCENDING":
                ordered = [i for i in ordered if int(i) < after]
            else:
                ordered = [i for i in ordered if int(i) > after]
        page = ordered[:size]
        next_mark = None
        if len(ordered) > size:
            next_mark = _encode_bookmark({"k": kind, "a": account, "o": order, "after": page[-1]})
        return page, next_mark

    def _op_customer_lists_list(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        account = p["ad_account_id"]
        lists = self._lists.get(account, {})
        page, mark = self._page("customer_lists", account, list(lists), q)
        return _Outcome(200, {"items": [self._list_view(lists[i]) for i in page], "bookmark": mark})

    def _op_customer_lists_create(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        members = set(_split_records(body["records"]))
        c = self._create_list(
            p["ad_account_id"], body["name"], body.get("list_type", "EMAIL"), members
        )
        return _Outcome(200, self._list_view(c))

    def _op_customer_lists_get(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        return _Outcome(
            200, self._list_view(self._get_list(p["ad_account_id"], p["customer_list_id"]))
        )

    def _op_customer_lists_update(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        c = self._get_list(p["ad_account_id"], p["customer_list_id"])
        records = _split_records(body["records"])
        if body["operation_type"] == "ADD":
            c.members.update(records)
            c.num_uploaded_user_records += len(records)
        else:
            c.members.difference_update(records)
            c.num_removed_user_records += len(records)
        c.num_batches += 1
        c.updated_time = int(time.time())
        return _Outcome(200, self._list_view(c))

    def _op_audiences_list(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        account = p["ad_account_id"]
        audiences = self._audiences.get(account, {})
        ids = [] if q.get("ownership_type") == "RECEIVED" else list(audiences)
        page, mark = self._page("audiences", account, ids, q)
        return _Outcome(
            200, {"items": [self._audience_view(audiences[i]) for i in page], "bookmark": mark}
        )

    def _op_audiences_create(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        account = p["ad_account_id"]
        rule = dict(body.get("rule") or {})
        if body["audience_type"] == "CUSTOMER_LIST":
            list_id = rule.get("customer_list_id")
            if not list_id:
                raise _ApiError(
                    400, 1, "rule.customer_list_id is required for a CUSTOMER_LIST audience."
                )
            c = self._get_list(account, str(list_id))
            if len(c.members) < self.min_audience_size:
                raise _ApiError(
                    400,
                    TOO_SMALL_CODE,
                    "Customer list is too small to create an audience "
                    f"({len(c.members)} < {self.min_audience_size} matched users).",
                )
        a = self._create_audience(
            account, body["name"], body["audience_type"], rule, body.get("description")
        )
        return _Outcome(200, self._audience_view(a))

    def _op_audiences_get(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        return _Outcome(
            200, self._audience_view(self._get_audience(p["ad_account_id"], p["audience_id"]))
        )

    def _op_audiences_update(self, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        account = p["ad_account_id"]
        a = self._get_audience(account, p["audience_id"])
        if body.get("operation_type") == "REMOVE":
            a.status = "REMOVED"
        if "name" in body:
            a.name = body["name"]
        if "description" in body:
            a.description = body["description"]
        if "rule" in body:
            rule = dict(body["rule"])
            list_id = rule.get("customer_list_id")
            if a.audience_type == "CUSTOMER_LIST" and list_id is not None:
                self._get_list(account, str(list_id))
            a.rule = {**a.rule, **rule}
        a.updated_timestamp = int(time.time())
        return _Outcome(200, self._audience_view(a))

    def _op_oauth_token(self, body: _Json, basic: tuple[str, str] | None) -> _Outcome:
        if basic is None or not (
            secrets.compare_digest(basic[0], self.client_id)
            and secrets.compare_digest(basic[1], self.client_secret)
        ):
            return _Outcome(401, dict(AUTH_FAILED))
        if body.get("grant_type") != "refresh_token":
            return _Outcome(400, {"code": 1, "message": "Unsupported grant_type."})
        now = int(time.time())
        old = str(body.get("refresh_token", ""))
        expires_at = self._refresh.get(old)
        if expires_at is None or expires_at <= now:
            return _Outcome(400, {"code": 283, "message": "Invalid refresh token"})
        access = "pina_" + secrets.token_urlsafe(24)
        self._access[access] = 0
        refresh = old
        if str(body.get("continuous_refresh", "")).lower() == "true":
            refresh = "pinr_" + secrets.token_urlsafe(24)
            del self._refresh[old]
            expires_at = now + self.refresh_token_expires_in
            self._refresh[refresh] = expires_at
        return _Outcome(
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": ACCESS_TOKEN_EXPIRES_IN,
                "scope": str(body.get("scope") or self.scope),
                "response_type": "refresh_token",
                "refresh_token": refresh,
                "refresh_token_expires_in": max(0, expires_at - now),
                "refresh_token_expires_at": expires_at,
            },
        )

    # ------------------------------------------------------------------ request pipeline

    def _violation(self, text: str) -> None:
        with self._lock:
            self.spec_violations.append(text)
        logger.debug("spec violation recorded (%d so far)", len(self.spec_violations))

    def _take_faults(self, method: str, path: str) -> list[FaultRule]:
        with self._lock:
            fired: list[FaultRule] = []
            for rule in self._faults:
                if rule.matches(method, path) and rule.take():
                    fired.append(rule)
                    self.faults_fired.append((rule.kind, method, path))
            return fired

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw_body: bytes,
    ) -> tuple[_Outcome, RecordedRequest | None]:
        """Serve one API request (everything but the socket I/O)."""
        parts = urlsplit(target)
        path = parts.path
        started = time.time()
        if self.latency > 0:
            time.sleep(self.latency)
        auth_kind = headers.get("authorization", "").split(" ", 1)[0].lower() or None
        content_type = headers.get("content-type")
        record = RecordedRequest(
            method=method,
            path=path,
            query={k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()},
            body=_redact(parse_body(content_type, raw_body)) if self.record_bodies else None,
            status=0,
            time=started,
            auth=auth_kind,
        )
        outcome = self._serve(method, path, parts.query, headers, content_type, raw_body, record)
        record.status = 0 if outcome.drop and record.fault == "drop_before" else outcome.status
        with self._lock:
            self.requests.append(record)
        logger.debug(
            "%s %s -> %s%s",
            method,
            path,
            record.status,
            f" (fault {record.fault})" if record.fault else "",
        )
        return outcome, record

    def _serve(
        self,
        method: str,
        path: str,
        raw_query: str,
        headers: dict[str, str],
        content_type: str | None,
        raw_body: bytes,
        record: RecordedRequest,
    ) -> _Outcome:
        fired = self._take_faults(method, path)
        for rule in fired:
            if rule.kind == "latency":
                time.sleep(float(rule.params["seconds"]))
        kinds = {rule.kind: rule for rule in fired}
        if fired:
            record.fault = ",".join(rule.kind for rule in fired)
        if "drop_before" in kinds:
            record.fault = "drop_before"
            return _Outcome(0, drop=True)
        if "status" in kinds:
            return self._status_fault(kinds["status"].params)

        op, path_known = self.spec.match(method, path)
        if op is None:
            if path_known:
                text = f"{method} {path}: method not allowed by the spec"
                self._violation(text)
                return _Outcome(405, {"code": 1, "message": text})
            text = f"{method} {path}: no such operation in the spec"
            self._violation(text)
            return _Outcome(404, {"code": 404, "message": text})
        record.operation = op.operation_id
        checked = self.spec.check_request(op, path, raw_query, content_type, raw_body)
        if checked.errors:
            text = f"{method} {path} ({op.operation_id}): " + "; ".join(checked.errors)
            self._violation(text)
            return _Outcome(400, {"code": 1, "message": text})

        token: str | None = None
        with self._lock:
            if op.operation_id == "oauth/token":
                outcome = self._op_oauth_token(checked.body, _basic_credentials(headers))
            else:
                token = _bearer(headers)
                if token is None or token not in self._access:
                    outcome = _Outcome(401, dict(AUTH_FAILED))
                    token = None
                else:
                    outcome = self._run(op, checked.path_params, checked.query, checked.body)
                    if 200 <= outcome.status < 300:
                        self._access[token] += 1
                        lifetime = self._token_lifetime
                        if lifetime is not None and self._access[token] >= lifetime:
                            del self._access[token]
            if token is not None and "expire_token" in kinds:
                self._access.pop(token, None)
        self._check_response(op, outcome)
        if "drop_after" in kinds:
            record.fault = "drop_after"
            outcome.drop = True
        return outcome

    def _run(self, op: Operation, p: dict[str, str], q: _Json, body: Any) -> _Outcome:
        handler = getattr(self, "_op_" + op.operation_id.replace("/", "_"))
        try:
            result: _Outcome = handler(p, q, body)
        except _ApiError as exc:
            if exc.code == 1:  # a request the spec allows but the emulator cannot make sense of
                self._violation(f"{op.method} {op.template}: {exc.message}")
            return _Outcome(exc.status, {"code": exc.code, "message": exc.message})
        return result

    def _check_response(self, op: Operation, outcome: _Outcome) -> None:
        checker = op.response_checker(outcome.status)
        if checker is None:
            if 200 <= outcome.status < 300:
                self._violation(f"{op.operation_id}: no response schema for {outcome.status}")
            return
        errors = checker.errors(outcome.body, f"response {outcome.status}")
        if errors:
            self._violation(f"emulator bug in {op.operation_id} response: " + "; ".join(errors))

    @staticmethod
    def _status_fault(params: _Json) -> _Outcome:
        status = int(params["status"])
        default_code = 8 if status == 429 else status
        body = {
            "code": int(params.get("code", default_code)),
            "message": str(params.get("message", f"Injected HTTP {status}.")),
        }
        headers: dict[str, str] = {}
        if params.get("retry_after") is not None:
            headers["Retry-After"] = str(params["retry_after"])
        if status == 429:
            headers["X-RateLimit-Limit"] = str(params.get("ratelimit_limit", 100))
            headers["X-RateLimit-Remaining"] = "0"
        if params.get("ratelimit_reset") is not None:
            headers["X-RateLimit-Reset"] = str(params["ratelimit_reset"])
        return _Outcome(status, body, headers)

    # ------------------------------------------------------------------ control API

    def handle_control(self, method: str, target: str, raw_body: bytes) -> _Outcome:
        parts = urlsplit(target)
        action = parts.path[len(CONTROL_PREFIX) :].strip("/")
        query = parse_qs(parts.query)
        try:
            body: Any = json.loads(raw_body) if raw_body else {}
        except ValueError:
            return _Outcome(400, {"error": "body is not JSON"})
        try:
            if method == "GET" and action == "state":
                return _Outcome(200, self.state())
            if method == "GET" and action == "requests":
                bodies = query.get("bodies", ["0"])[0] not in ("0", "false", "")
                with self._lock:
                    log = [r.to_json(bodies=bodies) for r in self.requests]
                return _Outcome(200, {"requests": log})
            if method == "GET" and action == "faults":
                return _Outcome(200, {"faults": [f.to_json() for f in self.faults]})
            if method == "POST" and action == "faults":
                spec = dict(body)
                kind = spec.pop("kind")
                rule = self.add_fault(kind, **spec)
                return _Outcome(200, rule.to_json())
            if method in ("DELETE", "POST") and action in ("faults", "faults/clear"):
                self.clear_faults()
                return _Outcome(200, {"ok": True})
            if method == "POST" and action == "reset":
                self.reset()
                return _Outcome(200, {"ok": True})
            if method == "GET" and action == "config":
                return _Outcome(200, self.config())
            if method == "POST" and action == "config":
                self.configure(**body)
                return _Outcome(200, self.config())
            if method == "POST" and action == "seed_list":
                list_id = self.seed_list(
                    str(body["ad_account_id"]),
                    str(body["name"]),
                    set(body.get("members", [])),
                    str(body.get("list_type", "EMAIL")),
                )
                return _Outcome(200, {"id": list_id})
            if method == "POST" and action == "seed_audience":
                audience_id = self.seed_audience(
                    str(body["ad_account_id"]),
                    str(body["name"]),
                    body.get("customer_list_id"),
                    audience_type=str(body.get("audience_type", "CUSTOMER_LIST")),
                    description=body.get("description"),
                )
                return _Outcome(200, {"id": audience_id})
        except (KeyError, TypeError, ValueError, re.error) as exc:
            return _Outcome(400, {"error": f"{type(exc).__name__}: {exc}"})
        return _Outcome(404, {"error": f"no control endpoint {method} {parts.path}"})


_SECRET_FIELDS = ("refresh_token", "access_token", "client_secret", "code")


def token_fingerprint(token: str) -> str:
    """How a secret sent in a form body appears in the request log."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def _redact(body: Any) -> Any:
    if isinstance(body, dict) and any(k in body for k in _SECRET_FIELDS):
        return {k: token_fingerprint(str(v)) if k in _SECRET_FIELDS else v for k, v in body.items()}
    return body


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    emulator: PinterestEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PinterestEmulator/1.0"
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._lock:
            self.server.emulator._connections.add(self.connection)

    def handle(self) -> None:
        # a client that hangs up (timeout, dropped connection) is normal here, not an error
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.emulator._lock:
            self.server.emulator._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are logged (without bodies) by the emulator itself

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        data = self.rfile.read(n) if n > 0 else b""
        if len(data) < n:
            raise _ClientGone  # killed or hung up mid-request: nothing arrived to serve
        return data

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        try:
            raw = self._read_body()
        except _ClientGone:
            # Like a real server, drop a request whose body never fully arrived (a client
            # killed mid-send): it is neither served nor a spec violation.
            self.close_connection = True
            return
        if raw is None:
            self.close_connection = True
            self._send(_Outcome(400, {"code": 1, "message": "malformed request body framing"}))
            return
        if self.path.startswith(CONTROL_PREFIX):
            self._send(emulator.handle_control(self.command, self.path, raw))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        outcome, _ = emulator.handle(self.command, self.path, headers, raw)
        if outcome.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(outcome)

    def _send(self, outcome: _Outcome) -> None:
        payload = b"" if outcome.body is None else json.dumps(outcome.body).encode()
        self.send_response(outcome.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PATCH = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
