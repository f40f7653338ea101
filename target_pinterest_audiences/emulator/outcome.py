"""What an emulated call answers: an ``Outcome``, or an ``ApiError`` an operation raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


@dataclass
class Outcome:
    """The answer to one request; ``drop`` closes the connection without answering."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class ApiError(Exception):
    """Pinterest's ``{code, message}`` error answer, raised from inside an operation."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def outcome(self) -> Outcome:
        return Outcome(self.status, {"code": self.code, "message": self.message})
