"""One API request from bytes to answer, everything but the socket. In order: latency,
faults, the operation in the spec (404; 405 with ``Allow`` for a method its path does not
have), the body limit (413), authentication (401 code 2: a bearer token, or the app's HTTP
Basic credentials for the token call), the spec check of the request (400), scopes (401 code
3), quotas (429 code 8), the ad account (403 code 29 or 404 code 2 for one the token may not
use), the operation, the spec check of the answer, the request log. A request that fails the
spec check is recorded as a spec violation even when authentication refuses it first."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .faults import FaultRule, FaultSet, status_fault_outcome
from .model import Model
from .operations import AUTH_FAILED, Operations
from .options import Options
from .outcome import ApiError, Json, Outcome
from .quotas import Quotas
from .request_log import RecordedRequest, redact
from .spec import CheckedRequest, Operation, Spec, parse_body

logger = logging.getLogger(__name__)

OAuthHandler = Callable[[Json, "tuple[str, str] | None"], Outcome]


class Pipeline:
    """Serves API requests against the model; records each in ``requests`` and every
    departure from the spec (the client's or the emulator's own) in ``spec_violations``."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        options: Options,
        spec: Spec,
        model: Model,
        operations: Operations,
        faults: FaultSet,
        quotas: Quotas,
        oauth_token: OAuthHandler,
    ) -> None:
        self._lock = lock
        self.options = options
        self.spec = spec
        self.model = model
        self.operations = operations
        self.faults = faults
        self.quotas = quotas
        self._oauth_token = oauth_token  # the emulator's hook, so a subclass can watch it
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []

    def reset(self) -> None:
        self.requests.clear()
        self.spec_violations.clear()

    def violation(self, text: str) -> None:
        with self._lock:
            self.spec_violations.append(text)
        logger.debug("spec violation recorded (%d so far)", len(self.spec_violations))

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        raw_body: bytes,
    ) -> tuple[Outcome, RecordedRequest]:
        """Serve one API request (``headers`` keyed in lowercase)."""
        parts = urlsplit(target)
        path = parts.path
        started = time.time()
        if self.options.latency > 0:
            time.sleep(self.options.latency)
        auth_kind = headers.get("authorization", "").split(" ", 1)[0].lower() or None
        content_type = headers.get("content-type")
        logged_body = None
        if self.options.record_bodies and not self._too_large(raw_body):
            logged_body = redact(parse_body(content_type, raw_body))
        record = RecordedRequest(
            method=method,
            path=path,
            query={k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()},
            body=logged_body,
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

    def _too_large(self, raw_body: bytes) -> bool:
        limit = self.options.max_body_bytes
        return bool(limit) and len(raw_body) > limit

    def _take_faults(self, method: str, path: str) -> list[FaultRule]:
        with self._lock:
            return self.faults.take(method, path)

    def _serve(
        self,
        method: str,
        path: str,
        raw_query: str,
        headers: dict[str, str],
        content_type: str | None,
        raw_body: bytes,
        record: RecordedRequest,
    ) -> Outcome:
        fired = self._take_faults(method, path)
        for rule in fired:
            if rule.kind == "latency":
                time.sleep(float(rule.params["seconds"]))
        kinds = {rule.kind: rule for rule in fired}
        if fired:
            record.fault = ",".join(rule.kind for rule in fired)
        if "drop_before" in kinds:
            record.fault = "drop_before"
            return Outcome(0, drop=True)
        if "status" in kinds:
            return status_fault_outcome(kinds["status"].params)

        if method == "OPTIONS" and self.options.head_and_options:
            allowed = self._allowed(path)
            if allowed:
                return Outcome(204, None, headers={"Allow": ", ".join(allowed)})
        spec_method = "GET" if method == "HEAD" and self.options.head_and_options else method
        op, path_known = self.spec.match(spec_method, path)
        if op is None:
            if path_known:
                return self._not_allowed(method, path)
            text = f"{method} {path}: no such operation in the spec"
            self.violation(text)
            return Outcome(404, {"code": 404, "message": text})
        record.operation = op.operation_id
        if self._too_large(raw_body):
            outcome = Outcome(
                413,
                {
                    "code": self.options.body_too_large_code,
                    "message": self.options.body_too_large_message,
                },
            )
            self._check_response(op, outcome)
            return outcome
        checked = self.spec.check_request(op, path, raw_query, content_type, raw_body)
        invalid: Outcome | None = None
        if checked.errors:
            text = f"{method} {path} ({op.operation_id}): " + "; ".join(checked.errors)
            self.violation(text)
            invalid = Outcome(400, {"code": 1, "message": text})

        with self._lock:
            refused, token = self._authenticate(op, headers)
            outcome = refused or invalid or self._authorized(op, token, checked, headers)
            if token is not None and invalid is None and "expire_token" in kinds:
                self.model.tokens.revoke_access(token)
        self._check_response(op, outcome)
        if "drop_after" in kinds:
            record.fault = "drop_after"
            outcome.drop = True
        return outcome

    def _allowed(self, path: str) -> list[str]:
        """The methods the spec has for ``path`` (with HEAD and OPTIONS when answered)."""
        methods = self.spec.methods_at(path)
        if methods and self.options.head_and_options:
            methods = [*methods, *(["HEAD"] if "GET" in methods else []), "OPTIONS"]
        return methods

    def _not_allowed(self, method: str, path: str) -> Outcome:
        """405 for a method the spec does not have at a path it knows, with ``Allow``."""
        allowed = ", ".join(self._allowed(path))
        text = f"{method} {path}: method not allowed by the spec"
        self.violation(text)
        return Outcome(
            405, {"code": 1, "message": f"{text} (allowed: {allowed})"}, headers={"Allow": allowed}
        )

    def _authenticate(
        self, op: Operation, headers: dict[str, str]
    ) -> tuple[Outcome | None, str | None]:
        """(401 or None, the bearer token): the token call authenticates the app (HTTP Basic),
        every other call a valid access token. Call under the lock."""
        if op.operation_id == "oauth/token":
            if self.operations.app_authenticated(basic_credentials(headers)):
                return None, None
            return Outcome(401, dict(AUTH_FAILED)), None
        token = bearer_token(headers)
        if token is None or token not in self.model.tokens.access:
            return Outcome(401, dict(AUTH_FAILED)), None
        return None, token

    def _authorized(
        self, op: Operation, token: str | None, checked: CheckedRequest, headers: dict[str, str]
    ) -> Outcome:
        """An authenticated, valid request: scopes, quotas, the ad account, the operation.
        Call under the lock."""
        if token is None:  # the token call counts against the daily quota, as all calls
            return self.quotas.admit(op.ratelimit_category) or self._oauth_token(
                checked.body, basic_credentials(headers)
            )
        tokens = self.model.tokens
        if missing := tokens.missing_scopes(token, op.scopes):
            return Outcome(401, _missing_scopes(missing))
        outcome = (
            self.quotas.admit(op.ratelimit_category)
            or self._account_refusal(token, checked.path_params)
            or self._run(op, checked.path_params, checked.query, checked.body)
        )
        if 200 <= outcome.status < 300:
            tokens.count_call(token, self.options.token_lifetime)
        return outcome

    def _account_refusal(self, token: str, path_params: dict[str, str]) -> Outcome | None:
        """The refusal of a call under an ad account ``token`` may not use, else None."""
        account = path_params.get("ad_account_id")
        if account is None or self.model.tokens.may_use(token, account, self.options.ad_accounts):
            return None
        status, code, message = self.options.ad_account_refusal_answer()
        return Outcome(status, {"code": code, "message": message})

    def _run(self, op: Operation, p: dict[str, str], q: Json, body: Any) -> Outcome:
        handler = self.operations.handler(op.operation_id)
        try:
            return handler(p, q, body)
        except ApiError as exc:
            if exc.code == 1:  # a request the spec allows but the emulator cannot make sense of
                self.violation(f"{op.method} {op.template}: {exc.message}")
            return exc.outcome()

    def _check_response(self, op: Operation, outcome: Outcome) -> None:
        checker = op.response_checker(outcome.status)
        if checker is None:
            if 200 <= outcome.status < 300:
                self.violation(f"{op.operation_id}: no response schema for {outcome.status}")
            return
        errors = checker.errors(outcome.body, f"response {outcome.status}")
        if errors:
            self.violation(f"emulator bug in {op.operation_id} response: " + "; ".join(errors))


def _missing_scopes(missing: list[str]) -> Json:
    return {"code": 3, "message": f"Authorization failed. Missing scopes: {', '.join(missing)}."}


def bearer_token(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
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
