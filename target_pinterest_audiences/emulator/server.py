"""``PinterestEmulator``: a local Pinterest API v5 over real HTTP, with in-memory state.

It serves the customer-list, audience and OAuth token operations of the vendored OpenAPI
description, validates every request (and every answer it sends) against it, records a
request log, and can inject faults (HTTP errors with rate-limit headers, connections dropped
before or after a write, latency, access-token expiry) so that clients' retry, crash-safety
and token-refresh code can be tested over real sockets. This class wires the parts:
``model`` (the data), ``operations`` (the API on it), ``pipeline`` (one request, end to end),
``faults``, ``control`` (the ``/_emulator/`` API) and ``http_server`` (the sockets).

Nothing here logs request bodies or tokens.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from .control import CONTROL_PREFIX, handle_control
from .faults import FAULT_KINDS, FaultRule, FaultSet
from .http_server import HttpServer
from .model import Model
from .operations import Operations
from .options import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SIXTY_DAYS,
    TOO_SMALL_CODE,
    Options,
)
from .outcome import Json, Outcome
from .pipeline import Pipeline
from .request_log import RecordedRequest, token_fingerprint
from .spec import BASE_PATH, Spec
from .tokens import Tokens

__all__ = [  # what `from .server import ...` has always offered
    "CONTROL_PREFIX",
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REFRESH_TOKEN",
    "FAULT_KINDS",
    "SIXTY_DAYS",
    "TOO_SMALL_CODE",
    "FaultRule",
    "PinterestEmulator",
    "RecordedRequest",
    "token_fingerprint",
]


class _Option:
    """An attribute of the emulator that reads, and through ``configure`` writes, one option."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, emulator: PinterestEmulator, owner: type | None = None) -> Any:
        return getattr(emulator.options, self.name)

    def __set__(self, emulator: PinterestEmulator, value: Any) -> None:
        emulator.configure(**{self.name: value})


class PinterestEmulator:
    """In-memory Pinterest API v5 (customer lists, audiences, OAuth token) over HTTP."""

    page_size = _Option()
    min_audience_size = _Option()
    latency = _Option()
    refresh_token_expires_in = _Option()
    client_id = _Option()  # read-only, like the options below: fixed at construction
    client_secret = _Option()
    scope = _Option()
    record_bodies = _Option()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_tokens: set[str] | frozenset[str] | None = None,
        refresh_tokens: set[str] | frozenset[str] | None = None,
        **options: Any,
    ) -> None:
        self.options = Options(**options)  # TypeError for an unknown option
        self.spec = Spec()
        self._lock = threading.RLock()
        self.model = Model(
            Tokens(
                _token_set(access_tokens, DEFAULT_ACCESS_TOKEN),
                _token_set(refresh_tokens, DEFAULT_REFRESH_TOKEN),
            )
        )
        self.operations = Operations(self.model, self.options)
        self._faults = FaultSet()
        self._pipeline = Pipeline(
            lock=self._lock,
            options=self.options,
            spec=self.spec,
            model=self.model,
            operations=self.operations,
            faults=self._faults,
            oauth_token=self._op_oauth_token,
        )
        self._http = HttpServer(
            host,
            port,
            serve_api=lambda method, target, headers, raw: self.handle(
                method, target, headers, raw
            )[0],
            serve_control=self.handle_control,
            control_prefix=CONTROL_PREFIX,
        )
        self.reset()

    # ---- lifecycle

    @property
    def host(self) -> str:
        return self._http.host

    @property
    def port(self) -> int:
        """The port; after ``start`` with port 0, the one picked."""
        return self._http.port

    @property
    def url(self) -> str:
        """Base URL of the API (``http://host:port/v5``): the target's ``api_url``."""
        return f"{self.root_url}{BASE_PATH}"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PinterestEmulator:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> PinterestEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- serving (the HTTP server calls these; in-process callers may too)

    def handle(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes
    ) -> tuple[Outcome, RecordedRequest]:
        """Serve one API request (everything but the socket I/O)."""
        return self._pipeline.handle(method, target, headers, raw_body)

    def handle_control(self, method: str, target: str, raw_body: bytes) -> Outcome:
        return handle_control(self, method, target, raw_body)

    def _op_oauth_token(self, body: Json, basic: tuple[str, str] | None) -> Outcome:
        # The token call goes through here, so that a test's subclass can see what was issued
        # (tests/test_resilience.py's IssuingEmulator does; `issued_tokens()` would serve too).
        return self.operations.oauth_token(body, basic)

    # ---- configuration

    def reset(self) -> None:
        """Forget all lists, audiences, requests, violations and faults; restore tokens."""
        with self._lock:
            self._pipeline.reset()
            self._faults.reset()
            self.model.clear()
            expires = int(time.time()) + self.options.refresh_token_expires_in
            self.model.tokens.reset(refresh_expires_at=expires)

    def configure(self, **options: Any) -> None:
        """Change options that can change at run time (see ``config()``)."""
        with self._lock:
            restart_counts = "token_lifetime" in options
            self.options.update(options)
            if restart_counts:
                self.model.tokens.restart_counts()

    def config(self) -> Json:
        with self._lock:
            return self.options.runtime_view()

    def set_token_lifetime(self, calls: int | None) -> None:
        """Access tokens expire after ``calls`` successful authenticated calls (None: never).

        Counting restarts now for the tokens that are currently valid.
        """
        self.configure(token_lifetime=calls)

    @property
    def token_lifetime(self) -> int | None:
        lifetime: int | None = self.options.token_lifetime
        return lifetime

    # ---- faults

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
            return self._faults.add(
                kind, method=method, path=path, times=times, skip=skip, params=params
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        with self._lock:
            return list(self._faults.rules)

    @property
    def faults_fired(self) -> list[tuple[str, str, str]]:
        """(kind, method, path) of every fault that fired, in order."""
        return self._faults.fired

    # ---- the request log

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._pipeline.requests

    @property
    def spec_violations(self) -> list[str]:
        """Every departure from the spec seen, the client's or the emulator's own."""
        return self._pipeline.spec_violations

    def request_log(self, *, bodies: bool = False) -> list[Json]:
        with self._lock:
            return [r.to_json(bodies=bodies) for r in self.requests]

    # ---- tokens (for tests)

    def valid_access_tokens(self) -> set[str]:
        with self._lock:
            return self.model.tokens.valid_access()

    def valid_refresh_tokens(self) -> set[str]:
        with self._lock:
            return self.model.tokens.valid_refresh(int(time.time()))

    def add_access_token(self, token: str) -> None:
        with self._lock:
            self.model.tokens.add_access(token)

    def revoke_access_token(self, token: str) -> None:
        with self._lock:
            self.model.tokens.revoke_access(token)

    # ---- inspection and seeding

    def lists(self, ad_account_id: str) -> list[Json]:
        """Customer lists of an ad account, ascending by id (API view + list_type + size)."""
        with self._lock:
            return [
                {**self.operations.list_view(c), "list_type": c.list_type, "size": len(c.members)}
                for c in self.model.lists_of(ad_account_id)
            ]

    def members(self, ad_account_id: str, list_id: str) -> set[str]:
        with self._lock:
            c = self.model.find_list(ad_account_id, list_id)
            if c is None:
                raise KeyError(f"no customer list {list_id} in ad account {ad_account_id}")
            return set(c.members)

    def audiences(self, ad_account_id: str) -> list[Json]:
        with self._lock:
            return [
                self.operations.audience_view(a) for a in self.model.audiences_of(ad_account_id)
            ]

    def seed_list(
        self,
        ad_account_id: str,
        name: str,
        members: set[str] | frozenset[str] | list[str],
        list_type: str = "EMAIL",
    ) -> str:
        with self._lock:
            now = int(time.time())
            return self.model.create_list(ad_account_id, name, list_type, set(members), now=now).id

    def seed_audience(
        self,
        ad_account_id: str,
        name: str,
        customer_list_id: str | None = None,
        *,
        audience_type: str = "CUSTOMER_LIST",
        description: str | None = None,
        rule: Json | None = None,
    ) -> str:
        rule = dict(rule or {})
        if customer_list_id is not None:
            rule["customer_list_id"] = customer_list_id
        with self._lock:
            now = int(time.time())
            return self.model.create_audience(
                ad_account_id, name, audience_type, rule, description, now=now
            ).id

    def state(self) -> Json:
        """Everything, JSON-ready: lists with member counts and sorted members, audiences..."""
        with self._lock:
            lists = [
                {
                    **self.operations.list_view(c),
                    "list_type": c.list_type,
                    "member_count": len(c.members),
                    "members": sorted(c.members),
                }
                for c in self.model.all_lists()
            ]
            return {
                "lists": lists,
                "audiences": [self.operations.audience_view(a) for a in self.model.all_audiences()],
                "request_count": len(self.requests),
                "spec_violations": list(self.spec_violations),
                "faults_fired": [list(f) for f in self.faults_fired],
                "faults": [f.to_json() for f in self._faults.rules],
                "config": self.config(),
            }

    # ---- persistence

    def dump_state(self) -> Json:
        """Persistent state (lists, audiences, tokens, id counter) for ``load_state``."""
        with self._lock:
            return self.model.dump()

    def load_state(self, data: Json) -> None:
        with self._lock:
            self.model.load(data)

    def save_state_file(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.dump_state()), encoding="utf-8")
        tmp.replace(target)

    def load_state_file(self, path: str | Path) -> None:
        self.load_state(json.loads(Path(path).read_text(encoding="utf-8")))


def _token_set(tokens: set[str] | frozenset[str] | None, default: str) -> set[str]:
    return set(tokens) if tokens is not None else {default}
