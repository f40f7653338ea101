"""``PinterestEmulator``: a local Pinterest API v5 over real HTTP, with in-memory state.

It serves the customer-list, audience and OAuth token operations of the vendored OpenAPI
description, validates every request (and every answer it sends) against it, records a
request log, and can inject faults (HTTP errors with rate-limit headers, connections dropped
before or after a write, latency, access-token expiry) so that clients' retry, crash-safety
and token-refresh code can be tested over real sockets. By default it behaves as Pinterest
does (``options``): matching is asynchronous, audiences need 100 matched users, bodies over
1 MB are refused, quotas and scopes apply. This class wires the parts: ``model`` (the data),
``matching``, ``operations`` (the API on the data), ``quotas``, ``pipeline`` (one request,
end to end), ``faults``, ``control`` (the ``/_emulator/`` API), ``http_server`` (sockets).

Nothing here logs request bodies or tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import matching
from .control import CONTROL_PREFIX, handle_control
from .faults import FAULT_KINDS, FaultRule, FaultSet
from .http_server import HttpServer
from .matching import DECLARED_UNUSABLE, Unusable
from .model import Model
from .operations import Operations
from .options import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SIXTY_DAYS,
    TOO_SMALL_CODE,
    OptionAttribute,
    Options,
    ad_account_ids,
    describe_options,
)
from .outcome import Json, Outcome
from .pipeline import Pipeline
from .quotas import Quotas
from .request_log import RecordedRequest, token_fingerprint
from .spec import BASE_PATH, Spec
from .tokens import Tokens, parse_scopes

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


class PinterestEmulator:
    """In-memory Pinterest API v5 (customer lists, audiences, OAuth token) over HTTP.

    ``PinterestEmulator(host, port, *, access_tokens, refresh_tokens, **options)``: the
    initial tokens (default ``test-access-token`` / ``test-refresh-token``) and the options
    below, each also an attribute (setting it calls ``configure``).
    """

    # The options as attributes, for reading (and setting through `configure`).
    matching_delay = OptionAttribute()
    match_fraction = OptionAttribute()
    min_matched_users = OptionAttribute()
    min_audience_size = OptionAttribute("min_matched_users")  # the old name
    too_small_status = OptionAttribute()
    too_small_code = OptionAttribute()
    lookalike_countries = OptionAttribute()
    min_seed_size = OptionAttribute()
    invalid_rule_code = OptionAttribute()
    cumulative_exceptions = OptionAttribute()
    max_body_bytes = OptionAttribute()
    body_too_large_code = OptionAttribute()
    body_too_large_message = OptionAttribute()
    daily_quota = OptionAttribute()
    day_length = OptionAttribute()
    ads_write_per_minute = OptionAttribute()
    ads_read_per_minute = OptionAttribute()
    scope = OptionAttribute()
    ad_accounts = OptionAttribute()
    ad_account_refusal = OptionAttribute()
    refresh_token_expires_in = OptionAttribute()
    client_id = OptionAttribute()  # fixed at construction, as client_secret
    client_secret = OptionAttribute()
    page_size = OptionAttribute()
    latency = OptionAttribute()
    record_bodies = OptionAttribute()
    head_and_options = OptionAttribute()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_tokens: set[str] | frozenset[str] | None = None,
        refresh_tokens: set[str] | frozenset[str] | None = None,
        **options: Any,
    ) -> None:
        self.options = Options.create(options)  # TypeError for an unknown option
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
        self._quotas = Quotas(self.options)
        self._pipeline = Pipeline(
            lock=self._lock,
            options=self.options,
            spec=self.spec,
            model=self.model,
            operations=self.operations,
            faults=self._faults,
            quotas=self._quotas,
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
        # (tests/e2e/test_resilience.py's IssuingEmulator does; `issued_tokens()` serves too).
        return self.operations.oauth_token(body, basic)

    # ---- configuration

    def reset(self) -> None:
        """Forget lists, audiences, requests, violations, faults, declared unusable records
        and quota use; restore the initial tokens (options stay as they are)."""
        with self._lock:
            self._pipeline.reset()
            self._faults.reset()
            self._quotas.reset()
            self.model.clear()
            self.operations.unusable.clear()
            expires = int(time.time()) + self.options.refresh_token_expires_in
            self.model.tokens.reset(
                scopes=parse_scopes(self.options.scope), refresh_expires_at=expires
            )

    def configure(self, **options: Any) -> None:
        """Change options that can change at run time (see ``config()``)."""
        with self._lock:
            changed = self.options.update(options)
            if "token_lifetime" in changed:
                self.model.tokens.restart_counts()
            if "match_fraction" in changed:
                self.operations.rematch_all()
            if "scope" in changed:
                self.model.tokens.regrant_initial(parse_scopes(self.options.scope))

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

    def add_access_token(
        self,
        token: str,
        *,
        scope: str | None = None,
        ad_accounts: Iterable[str] | None = None,
    ) -> None:
        """A valid access token with ``scope`` (default: the ``scope`` option) that may use
        ``ad_accounts`` (default: those of the ``ad_accounts`` option, whenever they change)."""
        with self._lock:
            self.model.tokens.add_access(
                token,
                parse_scopes(scope or self.options.scope),
                ad_accounts=_own_accounts(ad_accounts),
            )

    def add_refresh_token(
        self,
        token: str,
        *,
        scope: str | None = None,
        ad_accounts: Iterable[str] | None = None,
    ) -> None:
        """A valid refresh token; the tokens refreshed with it get its ``scope`` and
        ``ad_accounts`` (defaults as for ``add_access_token``)."""
        with self._lock:
            expires = int(time.time()) + self.options.refresh_token_expires_in
            scopes = parse_scopes(scope or self.options.scope)
            self.model.tokens.add_refresh(
                token, scopes, expires_at=expires, ad_accounts=_own_accounts(ad_accounts)
            )

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token the token call issued since the last reset (so a
        test can check that none of them reached its logs)."""
        with self._lock:
            return list(self.model.tokens.issued)

    def revoke_access_token(self, token: str) -> None:
        with self._lock:
            self.model.tokens.revoke_access(token)

    # ---- inspection and seeding

    def lists(self, ad_account_id: str) -> list[Json]:
        """Customer lists of an ad account, ascending by id (API view + list_type + size,
        the member count, + matched_count, the members matched now)."""
        with self._lock:
            return [
                {**self.operations.list_state(c, members=False), "size": len(c.members)}
                for c in self.model.lists_of(ad_account_id)
            ]

    def list_state(self, list_id: str) -> Json | None:
        """One list (any ad account) as ``state()`` shows it; None when there is none."""
        with self._lock:
            c = self.model.find_list_anywhere(list_id)
            return None if c is None else self.operations.list_state(c)

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
        """A list as if uploaded long ago: matched already (READY or TOO_SMALL)."""
        with self._lock:
            now = int(time.time())
            c = self.model.create_list(ad_account_id, name, list_type, now=now)
            self.operations.upload(c, "ADD", list(members))
            matching.finish_matching(c)
            return c.id

    def seed_audience(
        self,
        ad_account_id: str,
        name: str,
        customer_list_id: str | None = None,
        *,
        audience_type: str = "CUSTOMER_LIST",
        description: str | None = None,
        rule: Json | None = None,
        status: str | None = None,
    ) -> str:
        """An audience; ``status`` (e.g. ``REMOVED``) fixes its status, else it follows its
        list's matching."""
        rule = dict(rule or {})
        if customer_list_id is not None:
            rule["customer_list_id"] = customer_list_id
        with self._lock:
            now = int(time.time())
            audience = self.model.create_audience(
                ad_account_id, name, audience_type, rule, description, now=now
            )
            audience.status = status
            return audience.id

    def declare_unusable(
        self,
        records: list[str] | set[str],
        *,
        code: int = DECLARED_UNUSABLE.code,
        message: str = DECLARED_UNUSABLE.message,
    ) -> None:
        """Uploads of these records (exact values) leave them out and report them in the
        list's ``exceptions`` under ``code`` (until a reset)."""
        with self._lock:
            reason = Unusable(int(code), str(message))
            self.operations.unusable.update(dict.fromkeys(records, reason))

    def finish_matching(self) -> None:
        """Every list's matching ends now (READY or TOO_SMALL), whatever matching_delay says."""
        with self._lock:
            for c in self.model.all_lists():
                matching.finish_matching(c)

    def new_day(self) -> None:
        """The emulated day ends now: the daily quota is whole again."""
        with self._lock:
            self._quotas.new_day()

    def state(self) -> Json:
        """Everything, JSON-ready: lists with member counts and sorted members, audiences..."""
        with self._lock:
            return {
                "lists": [self.operations.list_state(c) for c in self.model.all_lists()],
                "audiences": [self.operations.audience_view(a) for a in self.model.all_audiences()],
                "quota": self._quotas.view(),
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
            self.model.load(
                data,
                count_matched=lambda members: matching.count_matched(
                    members, self.options.match_fraction
                ),
                default_scopes=parse_scopes(self.options.scope),
            )

    def save_state_file(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.dump_state()), encoding="utf-8")
        tmp.replace(target)

    def load_state_file(self, path: str | Path) -> None:
        self.load_state(json.loads(Path(path).read_text(encoding="utf-8")))


# The options, from their one description, at the end of the class's docstring.
PinterestEmulator.__doc__ = (
    (PinterestEmulator.__doc__ or "").rstrip()
    + "\n\n"
    + "\n".join("    " + line for line in describe_options().splitlines())
)


def _token_set(tokens: set[str] | frozenset[str] | None, default: str) -> set[str]:
    return set(tokens) if tokens is not None else {default}


def _own_accounts(ad_accounts: Iterable[str] | None) -> frozenset[str] | None:
    """A token's own ad accounts, checked as the option's are (None: the option's)."""
    if ad_accounts is None:
        return None
    return frozenset(ad_account_ids("ad_accounts", ad_accounts))
