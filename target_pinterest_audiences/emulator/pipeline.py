"""One API request from bytes to answer, everything but the socket. In order: latency,
faults, the operation in the spec, the body limit (413), the spec check of the request,
authentication (401 code 2), scopes (401 code 3), quotas (429 code 8), the operation, the
spec check of the answer, the request log."""

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
from .spec import Operation, Spec, parse_body

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

        op, path_known = self.spec.match(method, path)
        if op is None:
            if path_known:
                text = f"{method} {path}: method not allowed by the spec"
                self.violation(text)
                return Outcome(405, {"code": 1, "message": text})
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
        if checked.errors:
            text = f"{method} {path} ({op.operation_id}): " + "; ".join(checked.errors)
            self.violation(text)
            return Outcome(400, {"code": 1, "message": text})

        token: str | None = None
        tokens = self.model.tokens
        with self._lock:
            if op.operation_id == "oauth/token":  # counts against the daily quota, as all
                outcome = self.quotas.admit(op.ratelimit_category) or self._oauth_token(
                    checked.body, basic_credentials(headers)
                )
            else:
                token = bearer_token(headers)
                if token is None or token not in tokens.access:
                    outcome = Outcome(401, dict(AUTH_FAILED))
                    token = None
                elif missing := tokens.missing_scopes(token, op.scopes):
                    outcome = Outcome(401, _missing_scopes(missing))
                else:
                    outcome = self.quotas.admit(op.ratelimit_category) or self._run(
                        op, checked.path_params, checked.query, checked.body
                    )
                    if 200 <= outcome.status < 300:
                        tokens.count_call(token, self.options.token_lifetime)
            if token is not None and "expire_token" in kinds:
                tokens.revoke_access(token)
        self._check_response(op, outcome)
        if "drop_after" in kinds:
            record.fault = "drop_after"
            outcome.drop = True
        return outcome

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
