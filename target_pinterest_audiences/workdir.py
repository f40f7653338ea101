"""The target's private working directory: `.target-pinterest-audiences/` under the working dir.

It holds the SQLite ledger and the newest refresh token: secrets and hashes that must never land in
the user's Meltano project repository, so the directory is owner-only and ignores itself in git.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

WORK_DIR_NAME = ".target-pinterest-audiences"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) with a `.gitignore` holding `*` if it has none; return `path`."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return path
