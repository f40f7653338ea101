"""Throughput and memory of target-pinterest-audiences, against yardsticks measured in the same run.

    .venv/bin/python scripts/bench.py                 # N = 1,000,000, 3 runs each, medians
    .venv/bin/python scripts/bench.py --rows 200000 --repeat 1 --skip-latency   # quick look

Measures, on the same generated input (raw emails, N rows), records per second and peak RSS of:
  * the target end to end against the local emulator (zero latency, quota raised);
  * the SDK's own no-op target (a BatchSink that does nothing), with default settings and
    with its fastest settings (msgspec reader, validate_records: false);
  * the floor: parse, normalize, hash, join into request bodies on one core (no SDK, no HTTP);
  * the target at 4N rows (memory must stay flat);
  * the target with 250 ms of API latency under the real 400 writes/minute quota.
Checks after every target run that the emulator received exactly the expected hashes.
Prints figures, never asserts timings: the ratios are what hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AD_ACCOUNT = "549755885175"
TOKEN = "bench-token"


@dataclass
class Measure:
    seconds: float
    peak_rss_mb: float  # peak PSS of the process tree (the target's reader workers included)


def _tree_pss_kb(root: int) -> int:
    """Proportional set size of a process and all its descendants, from /proc.

    PSS splits each shared page among the processes sharing it, so forked workers that share
    the parent's pages are not counted twice (summing RSS would).
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def run_measured(args: list[str], *, cwd: Path | None = None) -> Measure:
    """Run a command; wall time and the peak resident memory of its whole process tree."""
    with open(os.devnull, "rb") as source, open(os.devnull, "wb") as sink, \
            tempfile.TemporaryFile() as errors:  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, stdin=source, stdout=sink, stderr=errors)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, _tree_pss_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, _usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        returncode = os.waitstatus_to_exitcode(status)
        proc.returncode = returncode
        if returncode != 0:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"command failed ({returncode}): {' '.join(args)}\n{tail}")
    # Sampled every 50 ms (wait4's ru_maxrss would count the harness's own pages that the
    # child held between fork and exec, and would miss the target's worker processes).
    return Measure(elapsed, peak / 1024)


def generate(path: Path, rows: int) -> list[str]:
    """Singer input of `rows` raw emails in one stream; returns the expected member hashes."""
    schema = {
        "type": "object",
        "properties": {
            k: {"type": ["string", "null"]} for k in ("segment_name", "email", "action")
        },
    }
    expected: list[str] = []
    with path.open("w") as file:
        file.write(
            json.dumps(
                {"type": "SCHEMA", "stream": "bench", "schema": schema, "key_properties": []}
            )
            + "\n"
        )
        for n in range(rows):
            file.write(
                '{"type":"RECORD","stream":"bench","record":{"segment_name":"Benchmark",'
                f'"email":" Shopper.{n}@Example.com","action":"add"}}}}\n'
            )
            expected.append(hashlib.sha256(f"shopper.{n}@example.com".encode()).hexdigest())
        file.write(
            json.dumps({"type": "STATE", "value": {"bookmarks": {"bench": {"n": rows}}}}) + "\n"
        )
    return expected


class Emulator:
    """The local Pinterest emulator as its own process (it must not share our CPU accounting)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "target_pinterest_audiences.emulator",
                "--port",
                "0",
                "--access-token",
                TOKEN,
                "--page-size",
                "25",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = line.strip().rsplit(" ", 1)[-1]
        self.root = self.url.removesuffix("/v5")

    def control(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.root}/_emulator/{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            return json.loads(answer.read() or b"{}")

    def check_members(self, expected: list[str]) -> str:
        state = self.control("state")
        lists = (
            state["lists"].get(AD_ACCOUNT)
            if isinstance(state["lists"], dict)
            else [item for item in state["lists"] if item.get("ad_account_id") == AD_ACCOUNT]
        )
        assert lists, "no list was created"
        members = lists[0]["members"]
        ok = len(lists) == 1 and sorted(members) == sorted(expected)
        violations = len(state.get("spec_violations", []))
        return (
            f"{'exact' if ok else 'WRONG'} ({len(members)} members, {violations} spec violations)"
        )

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def target_command(config: dict, work: Path, input_path: Path) -> list[str]:
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    return [
        str(Path(PYTHON).parent / "target-pinterest-audiences"),
        "--config",
        str(config_path),
        "--input",
        str(input_path),
    ]


def median(measures: list[Measure]) -> Measure:
    return Measure(
        statistics.median(m.seconds for m in measures),
        statistics.median(m.peak_rss_mb for m in measures),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-4n", action="store_true")
    parser.add_argument(
        "--skip-noop-default",
        action="store_true",
        help="the SDK's default no-op is slow (about 25k rows/s)",
    )
    args = parser.parse_args()
    rows = args.rows
    work = Path(tempfile.mkdtemp(prefix="tpa-bench-"))
    print(f"generating {rows:,} rows in {work} ...", flush=True)
    input_path = work / "input.jsonl"
    expected = generate(input_path, rows)
    emulator = Emulator()
    base_config = {
        "ad_account_id": AD_ACCOUNT,
        "access_token": TOKEN,
        "api_url": emulator.url,
        "max_requests_per_minute": 100_000,
    }
    results: dict[str, Measure] = {}
    checks: list[str] = []
    try:

        def target_runs(path: Path, expect: list[str], label: str, **extra: object) -> Measure:
            measures = []
            for _ in range(args.repeat):
                emulator.control("reset", {})
                run_dir = Path(tempfile.mkdtemp(dir=work))
                measures.append(
                    run_measured(
                        target_command({**base_config, **extra}, run_dir, path), cwd=run_dir
                    )
                )
                checks.append(f"{label}: {emulator.check_members(expect)}")
            return median(measures)

        results["target"] = target_runs(input_path, expected, "target N")
        floor_cmd = [PYTHON, str(REPO / "scripts" / "bench_floor.py"), str(input_path)]
        results["floor"] = median([run_measured(floor_cmd) for _ in range(args.repeat)])
        noop = [PYTHON, str(REPO / "scripts" / "noop_target.py")]
        results["noop_fast"] = median(
            [run_measured([*noop, "fast", "--input", str(input_path)]) for _ in range(args.repeat)]
        )
        if not args.skip_noop_default:
            results["noop_default"] = run_measured([*noop, "default", "--input", str(input_path)])
        if not args.skip_4n:
            big = work / "input4.jsonl"
            expected4 = generate(big, rows * 4)
            results["target_4n"] = target_runs(big, expected4, "target 4N")
            big.unlink()
        latency_line = ""
        if not args.skip_latency:
            latency_line = latency_benchmark(emulator, base_config, work, checks)
    finally:
        emulator.close()

    def rate(m: Measure, n: int = rows) -> float:
        return n / m.seconds

    print()
    print(f"rows: {rows:,}; medians of {args.repeat} run(s); {os.cpu_count()} cores")
    print(f"{'what':<46} {'seconds':>8} {'records/s':>11} {'peak RSS MB':>12}")
    labels = {
        "target": "target end to end (emulator, zero latency)",
        "noop_fast": "SDK no-op target (msgspec, no validation)",
        "noop_default": "SDK no-op target (defaults)",
        "floor": "floor (parse+normalize+hash+join, 1 core)",
        "target_4n": "target end to end at 4N rows",
    }
    for key, label in labels.items():
        if key in results:
            n = rows * 4 if key == "target_4n" else rows
            m = results[key]
            print(f"{label:<46} {m.seconds:>8.2f} {rate(m, n):>11,.0f} {m.peak_rss_mb:>12.1f}")
    t = results["target"]
    print()
    print(f"target / SDK no-op (fastest):  {rate(t) / rate(results['noop_fast']):.2f}x faster")
    if "noop_default" in results:
        print(
            f"target / SDK no-op (defaults): {rate(t) / rate(results['noop_default']):.2f}x faster"
        )
    print(f"target time / floor time:      {t.seconds / results['floor'].seconds:.2f}x")
    if "target_4n" in results:
        print(
            f"peak RSS at 4N / at N:         {results['target_4n'].peak_rss_mb / t.peak_rss_mb:.2f}"
        )
    if latency_line:
        print(latency_line)
    print()
    for check in checks:
        print("membership check:", check)


def latency_benchmark(emulator: Emulator, base: dict, work: Path, checks: list[str]) -> str:
    """250 ms per call, the real 400 writes/minute quota: how close to the quota's rate?

    1,200 calls of 500 records (600,000 rows): three times the quota, so the run spans two
    minute boundaries. A client with zero latency could at best make 400 calls at once, the
    next 400 sixty seconds later and the last 400 at 120 s; `ideal` is that bound. The ratio
    ideal/actual is the share of the throughput the quota allows that the target reached.
    """
    calls, per_call, quota = 1200, 500, 400
    path = work / "latency.jsonl"
    expected = generate(path, calls * per_call)
    emulator.control("reset", {})
    emulator.control("config", {"latency": 0.25})
    run_dir = Path(tempfile.mkdtemp(dir=work))
    config = {**base, "max_requests_per_minute": quota, "records_per_request": per_call}
    try:
        measure = run_measured(target_command(config, run_dir, path), cwd=run_dir)
    finally:
        emulator.control("config", {"latency": 0.0})
    checks.append(f"latency run: {emulator.check_members(expected)}")
    requests = emulator.control("requests")
    writes = sorted(
        r["time"]
        for r in requests.get("requests", requests)
        if r["method"] in ("POST", "PATCH") and "customer_lists" in r["path"]
    )
    span = writes[-1] - writes[0] if len(writes) > 1 else float("nan")
    worst = max(sum(1 for w in writes if start <= w < start + 60) for start in writes)
    ideal = 60.0 * ((calls - 1) // quota)
    return (
        f"250 ms latency, quota {quota}/min, {calls} calls of {per_call}: "
        f"writes spanned {span:.1f}s "
        f"(ideal {ideal:.0f}s) -> {ideal / span:.0%} of the throughput the quota allows; "
        f"most writes in any 60 s window: {worst} (quota {quota}); whole run {measure.seconds:.1f}s"
    )


if __name__ == "__main__":
    main()
