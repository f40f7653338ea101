"""Local Pinterest API v5 emulator (customer lists, audiences, OAuth) for tests and demos."""

from .server import (
    CONTROL_PREFIX,
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    FAULT_KINDS,
    TOO_SMALL_CODE,
    FaultRule,
    PinterestEmulator,
    RecordedRequest,
    token_fingerprint,
)

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_ACCESS_TOKEN",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REFRESH_TOKEN",
    "FAULT_KINDS",
    "TOO_SMALL_CODE",
    "FaultRule",
    "PinterestEmulator",
    "RecordedRequest",
    "token_fingerprint",
]
