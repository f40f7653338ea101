"""Where the newest refresh token is kept between runs, behind one small protocol.

Pinterest's continuous refresh answers every refresh with a new refresh token and may
invalidate the previous one, so the newest must outlive the run. A :class:`TokenManager
<.auth.TokenManager>` keeps it in a list of stores: the :class:`FileTokenStore` in the
target's private directory, and (implemented elsewhere, by structural typing, without
importing this package) a database store shared by runs in fresh containers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from target_pinterest_audiences.workdir import ensure_private_dir

TOKEN_FILE_NAME = "refresh_token.json"  # noqa: S105 - a file name
LOCK_FILE_NAME = "refresh_token.lock"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredRefreshToken:
    """A refresh token Pinterest handed out, with what decides whether to use it."""

    refresh_token: str = field(repr=False)
    expires_at: float | None  # unix seconds, when Pinterest says the refresh token expires
    issued_at: float  # unix seconds when Pinterest issued it: the newest wins
    configured_sha256: str  # sha256 (hex) of the configured refresh_token it descends from


class RefreshTokenStore(Protocol):
    """Keeps the newest refresh token. ``exclusive()`` serializes refreshes across processes:
    a refresh holds it from reading the newest token to saving the one it got."""

    def load(self) -> StoredRefreshToken | None: ...

    def save(self, token: StoredRefreshToken) -> None: ...

    def exclusive(self) -> contextlib.AbstractContextManager[None]: ...

    def describe(self) -> str:  # for messages, never a secret
        ...


class FileTokenStore:
    """``refresh_token.json`` (mode 0600, written atomically) in a private directory (0700,
    with a ``.gitignore`` of ``*``); ``exclusive()`` is an ``flock`` on a lock file beside it."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / TOKEN_FILE_NAME
        self.lock_path = self.directory / LOCK_FILE_NAME

    def describe(self) -> str:
        return f"the file {self.path}"

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.directory)!r})"

    def load(self) -> StoredRefreshToken | None:
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning(
                "Ignoring unreadable stored refresh token file %s (%s)",
                self.path,
                type(exc).__name__,
            )
            return None
        if not isinstance(data, dict) or not data.get("refresh_token"):
            return None
        expires_at = data.get("refresh_token_expires_at")
        issued_at = data.get("issued_at")  # absent in files written before it was kept
        return StoredRefreshToken(
            refresh_token=str(data["refresh_token"]),
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            issued_at=float(issued_at) if isinstance(issued_at, int | float) else 0.0,
            configured_sha256=str(data.get("configured_refresh_token_sha256") or ""),
        )

    def save(self, token: StoredRefreshToken) -> None:
        payload = {
            "refresh_token": token.refresh_token,
            "refresh_token_expires_at": (
                int(token.expires_at) if token.expires_at is not None else None
            ),
            "issued_at": token.issued_at,
            "configured_refresh_token_sha256": token.configured_sha256,
        }
        ensure_private_dir(self.directory)
        tmp_name = str(self.directory / f".{TOKEN_FILE_NAME}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # in case of an unusual umask/ACL
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        ensure_private_dir(self.directory)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
