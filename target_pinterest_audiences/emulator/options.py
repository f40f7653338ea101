"""The emulator's options: each default written once, for the class, the command and the
control API alike."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .outcome import Json

DEFAULT_ACCESS_TOKEN = "test-access-token"  # noqa: S105 - a fixture value
DEFAULT_REFRESH_TOKEN = "test-refresh-token"  # noqa: S105 - a fixture value
DEFAULT_CLIENT_ID = "test-client-id"
DEFAULT_CLIENT_SECRET = "test-client-secret"  # noqa: S105 - a fixture value
SIXTY_DAYS = 60 * 24 * 3600
ACCESS_TOKEN_EXPIRES_IN = 30 * 24 * 3600
TOO_SMALL_CODE = 2613


def _option(default: Any, help: str, *, runtime: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "runtime": runtime})


@dataclass
class Options:
    """How the emulator behaves; ``runtime`` options can change while it serves."""

    page_size: int = _option(2, "items per page when a list call gives no page_size")
    min_audience_size: int = _option(
        0, "a list with fewer members is TOO_SMALL and gets no audience"
    )
    latency: float = _option(0.0, "seconds added to every API request")
    token_lifetime: int | None = _option(
        None, "access tokens expire after this many successful calls (none: never)"
    )
    refresh_token_expires_in: int = _option(
        SIXTY_DAYS, "lifetime in seconds of a refresh token issued by continuous refresh"
    )
    client_id: str = _option(DEFAULT_CLIENT_ID, "the app id of the token call", runtime=False)
    client_secret: str = _option(
        DEFAULT_CLIENT_SECRET, "the app secret of the token call", runtime=False
    )
    scope: str = _option("ads:read,ads:write", "scopes the token call reports", runtime=False)
    record_bodies: bool = _option(True, "keep request bodies in the request log", runtime=False)

    def update(self, changes: Json) -> None:
        """Apply run-time changes (values coerced to each option's type); ValueError for an
        unknown option or one that is fixed at construction."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        coerced: Json = {}
        for name, value in changes.items():
            spec = fields.get(name)
            if spec is None or not spec.metadata["runtime"]:
                raise ValueError(f"unknown emulator option {name!r}")
            coerced[name] = _coerce(value, spec)
        for name, value in coerced.items():
            setattr(self, name, value)

    def runtime_view(self) -> Json:
        """The options that can change at run time, JSON-ready."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["runtime"]
        }


def _coerce(value: Any, spec: dataclasses.Field[Any]) -> Any:
    kind = str(spec.type)
    if value is None and "None" in kind:
        return None
    if kind.startswith("int"):
        return int(value)
    if kind.startswith("float"):
        return float(value)
    if kind.startswith("bool"):
        return _boolean(value)
    return str(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)
