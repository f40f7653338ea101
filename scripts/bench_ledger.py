"""Benchmark the mirror-mode membership ledger.

    python scripts/bench_ledger.py --members 10000000 [--backend sqlite|postgres] [--url ...]

Phases (each timed):

1. ``initial diff``  - diff of N desired members against an empty ledger (the first run);
2. ``fill``          - confirm_added of every add, in chunks, as the sink does after
                       Pinterest accepted them (the ledger now holds N members);
3. ``diff``          - diff against N desired members overlapping 90% (10% new, 10% gone);
4. ``iterate``       - iterate the adds and the removes;
5. ``confirm``       - confirm_added / confirm_removed of those, chunk by chunk.

Members are sha256 digests of counters, generated lazily (no list of N in memory).
Peak memory is reported from getrusage(ru_maxrss) and /proc/self/status VmHWM.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from target_pinterest_audiences.ledger import open_ledger

ACCOUNT = "549755885175"
LIST_KEY = "2542380186"


def member(i: int) -> bytes:
    return hashlib.sha256(b"bench-member-%d" % i).digest()


def members(start: int, stop: int, per_blob: int = 10_000) -> Iterator[bytes]:
    """Blobs of ``per_blob`` digests, as the member store hands them over."""
    for first in range(start, stop, per_blob):
        yield b"".join([member(i) for i in range(first, min(first + per_blob, stop))])


def vm_hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def vm_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class RssSampler(threading.Thread):
    def __init__(self, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.peak = max(self.peak, vm_rss_mb())


def report(name: str, seconds: float, extra: str = "") -> None:
    print(
        f"{name:<22} {seconds:9.1f} s   VmHWM {vm_hwm_mb():7.1f} MB"
        + (f"   {extra}" if extra else ""),
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--url", help="ledger URL (default: a temp sqlite file / throwaway postgres)")
    ap.add_argument("--chunk", type=int, default=50_000, help="iterate/confirm chunk size")
    ap.add_argument("--workdir", help="directory for the sqlite file (default: a temp dir)")
    ap.add_argument("--pg-fsync", action="store_true", help="throwaway postgres with fsync=on")
    args = ap.parse_args()

    n, chunk = args.members, args.chunk
    churn = n // 10
    sampler = RssSampler()
    sampler.start()

    with ExitStack() as stack:
        url = args.url
        if url is None and args.backend == "postgres":
            from tests.pg import postgres_server

            url = stack.enter_context(postgres_server(fsync=args.pg_fsync))
        if url is None:
            tmp = args.workdir or tempfile.mkdtemp(prefix="tpa-bench-")
            work = Path(tmp)
            if not args.workdir:
                stack.callback(shutil.rmtree, work, True)
            ledger = open_ledger(None, base_dir=work)
            where = str(work / ".target-pinterest-audiences" / "ledger.sqlite")
        else:
            ledger = open_ledger(url, base_dir=Path.cwd())
            where = url
        stack.callback(ledger.close)
        print(f"backend={args.backend} members={n:,} chunk={chunk:,} ledger={where}", flush=True)
        print(f"{'phase':<22} {'wall':>9}     peak RSS so far", flush=True)
        total0 = time.perf_counter()

        with ledger.lock(ACCOUNT, LIST_KEY):
            t0 = time.perf_counter()
            plan = ledger.diff(ACCOUNT, LIST_KEY, members(0, n))
            report("initial diff", time.perf_counter() - t0, str(plan))

            t0 = time.perf_counter()
            for block in plan.adds(chunk):
                ledger.confirm_added(ACCOUNT, LIST_KEY, block)
            plan.close()
            report(
                "fill (confirm_added)",
                time.perf_counter() - t0,
                f"ledger holds {ledger.count(ACCOUNT, LIST_KEY):,}",
            )

            # 90% overlap: members [churn, n + churn) -> `churn` gone, `churn` new.
            t0 = time.perf_counter()
            plan = ledger.diff(ACCOUNT, LIST_KEY, members(churn, n + churn))
            report("diff 90% overlap", time.perf_counter() - t0, str(plan))
            assert plan.add_count == churn and plan.remove_count == churn, plan

            t0 = time.perf_counter()
            adds = sum(len(b) // 32 for b in plan.adds(chunk))
            removes = sum(len(b) // 32 for b in plan.removes(chunk))
            report("iterate adds+removes", time.perf_counter() - t0, f"{adds:,} + {removes:,}")
            assert adds == churn and removes == churn

            t0 = time.perf_counter()
            for block in plan.adds(chunk):
                ledger.confirm_added(ACCOUNT, LIST_KEY, block)
            for block in plan.removes(chunk):
                ledger.confirm_removed(ACCOUNT, LIST_KEY, block)
            plan.close()
            report(
                "confirm adds+removes",
                time.perf_counter() - t0,
                f"ledger holds {ledger.count(ACCOUNT, LIST_KEY):,}",
            )

        total = time.perf_counter() - total0
        sampler.stop.set()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{'total':<22} {total:9.1f} s   (user {ru.ru_utime:.1f} s, sys {ru.ru_stime:.1f} s)")
        print(
            f"peak RSS: ru_maxrss {ru.ru_maxrss / 1024:.1f} MB, VmHWM {vm_hwm_mb():.1f} MB, "
            f"sampled VmRSS max {max(sampler.peak, vm_rss_mb()):.1f} MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
