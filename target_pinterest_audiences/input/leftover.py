"""The input left unread when the run fails early: read and thrown away, for a bounded time.

A target that exits while its tap still writes leaves the tap writing into a closed pipe, and
`meltano run` then prints two `BrokenPipeError` tracebacks of its own under the target's
message (meltano/meltano#7047, open). So after a failure the target reads what the tap still
sends, without looking at it, until the tap closes its end (it finished) or a few seconds
have passed, and only then exits: the message stays the last thing the user reads. Only a
pipe or a socket is read (never a terminal, which would wait for a person).
"""

from __future__ import annotations

import os
import select
import stat
import time

DISCARD_SECONDS = 60.0  # most audience taps finish within this; a longer one is cut off
CHUNK = 1 << 20


def discard_unread_input(seconds: float = DISCARD_SECONDS, fd: int = 0) -> None:
    """Read and drop what arrives on ``fd`` until its end, or until ``seconds`` have passed."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            ready, _, _ = select.select([fd], [], [], left)
            if not ready or not os.read(fd, CHUNK):
                return
        except (OSError, ValueError):
            return
