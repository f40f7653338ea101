"""The unread input after an early failure (issue 20.5): read to its end, never for long."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from target_pinterest_audiences.input.leftover import discard_unread_input


def test_reads_to_the_end_of_a_pipe_the_writer_closes() -> None:
    read, write = os.pipe()
    data = b"x" * (4 << 20)  # far more than a pipe holds: the writer waits for the reader

    def writer() -> None:
        with os.fdopen(write, "wb") as out:
            out.write(data)

    feeder = threading.Thread(target=writer)
    feeder.start()
    started = time.monotonic()
    discard_unread_input(seconds=30, fd=read)
    feeder.join(timeout=5)
    assert not feeder.is_alive(), "the writer was left blocked"
    assert time.monotonic() - started < 10
    os.close(read)


def test_stops_after_the_time_given_when_the_writer_never_finishes() -> None:
    read, write = os.pipe()
    os.write(write, b"some input\n")  # and the write end stays open, as a slow tap's would
    started = time.monotonic()
    discard_unread_input(seconds=0.5, fd=read)
    waited = time.monotonic() - started
    assert 0.4 < waited < 5
    os.close(read)
    os.close(write)


def test_a_file_or_a_closed_descriptor_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"line\n" * 10)
    with path.open("rb") as file:
        started = time.monotonic()
        discard_unread_input(seconds=30, fd=file.fileno())
        assert file.tell() == 0  # not read: a file ends by itself, nobody waits on it
    read, write = os.pipe()
    os.close(read)
    os.close(write)
    discard_unread_input(seconds=30, fd=read)
    assert time.monotonic() - started < 5
