"""Injected faults: which requests they hit, and the answer a ``status`` fault gives."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .outcome import Json, Outcome

FAULT_KINDS = ("status", "drop_before", "drop_after", "latency", "expire_token")


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

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "skip": self.skip,
            "params": self.params,
            "fired": self.fired,
            "exhausted": self.exhausted,
        }


class FaultSet:
    """The injected rules, in order, and a log of every fault that fired.

    Not thread-safe on its own: the emulator calls it under its lock.
    """

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.fired: list[tuple[str, str, str]] = []  # (kind, method, path)
        self._seq = 0

    def add(
        self,
        kind: str,
        *,
        method: str | None,
        path: str | None,
        times: int | None,
        skip: int,
        params: dict[str, Any],
    ) -> FaultRule:
        self._seq += 1
        rule = FaultRule(
            kind=kind,
            method=method.upper() if method else None,
            path=path,
            times=times,
            skip=skip,
            params=dict(params),
            id=self._seq,
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget the rules (the log of fired faults stays until a reset)."""
        self.rules.clear()

    def reset(self) -> None:
        self.rules.clear()
        self.fired.clear()

    def take(self, method: str, path: str) -> list[FaultRule]:
        """The rules that fire for this request (each counts it)."""
        fired: list[FaultRule] = []
        for rule in self.rules:
            if rule.matches(method, path) and rule.take():
                fired.append(rule)
                self.fired.append((rule.kind, method, path))
        return fired


def status_fault_outcome(params: Json) -> Outcome:
    """The answer of a ``status`` fault: Pinterest's error body and rate-limit headers."""
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
    return Outcome(status, body, headers)
