"""Measuring a command's process tree: wall time and the largest peak RSS of any one process.

Shared by the benchmark scripts. The target's reader workers are processes of their own, so
the tree is sampled (every 100 ms) from each task's children list (cheap: no /proc scan), and
each process's VmHWM (its peak resident set so far) is kept.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measure:
    seconds: float
    largest_mb: float  # the largest peak RSS of any one process of the tree
    processes: int
    largest_is_root: bool = True  # whether that process is the command's own (not a child)


def descendants(root: int) -> list[int]:
    """The process and its descendants, from each task's children list."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as file:
                    todo.extend(int(child) for child in file.read().split())
        except OSError:
            continue
    return found


def peak_kb(pid: int) -> int:
    """VmHWM: the process's peak resident set so far."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(
    args: list[str],
    *,
    cwd: Path,
    log: Path | None = None,
    stdin: Path | None = None,
    stdout: Path | None = None,
) -> Measure:
    """Wall time, and the peak RSS of each process of the tree (sampled every 100 ms).

    ``log``: where to keep the command's stderr (its timestamped log lines say where the time
    went); ``stdin``: a file to feed it (else nothing); ``stdout``: where to keep its output
    (else dropped). A command that fails stops the script with the tail of its stderr."""
    peaks: dict[int, int] = {}
    with tempfile.TemporaryFile() as errors, open(stdin or os.devnull, "rb") as source, \
            open(stdout or os.devnull, "wb") as sink:  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, stdin=source, stdout=sink, stderr=errors)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                for pid in descendants(proc.pid):
                    peaks[pid] = max(peaks.get(pid, 0), peak_kb(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        returncode = proc.wait()
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        if log is not None:
            errors.seek(0)
            log.write_bytes(errors.read())
        if returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-4000:]
            raise SystemExit(f"command failed ({returncode}): {' '.join(args)}\n{tail}")
    largest = max(peaks, key=peaks.__getitem__, default=proc.pid)
    return Measure(
        elapsed, peaks.get(largest, 0) / 1024, len(peaks), largest_is_root=largest == proc.pid
    )
