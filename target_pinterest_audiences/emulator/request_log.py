"""The request log: what the emulator saw of each request, never a token or secret."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from .outcome import Json

_SECRET_FIELDS = ("refresh_token", "access_token", "client_secret", "code")


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

    def to_json(self, bodies: bool = False) -> Json:
        data = asdict(self)
        if not bodies and isinstance(self.body, dict):
            data["body"] = _summarize_body(self.body)
        return data


def _summarize_body(body: Json) -> Json:
    out: Json = {}
    for key, value in body.items():
        if key == "records" and isinstance(value, str):
            out["records_count"] = len([r for r in value.split(",") if r.strip()])
            out[key] = "<omitted>"
        else:
            out[key] = value
    return out


def token_fingerprint(token: str) -> str:
    """How a secret sent in a form body appears in the request log."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def redact(body: Any) -> Any:
    """The body with every secret form field replaced by its fingerprint."""
    if isinstance(body, dict) and any(k in body for k in _SECRET_FIELDS):
        return {k: token_fingerprint(str(v)) if k in _SECRET_FIELDS else v for k, v in body.items()}
    return body
