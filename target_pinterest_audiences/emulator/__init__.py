"""Local Pinterest API v5 emulator (customer lists, audiences, OAuth) for tests and demos."""

from .control import CONTROL_PREFIX
from .faults import FAULT_KINDS, FaultRule
from .options import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    TOO_SMALL_CODE,
)
from .request_log import RecordedRequest, token_fingerprint
from .server import PinterestEmulator

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
