"""Wall time of a small explicit run through the CLI: what opening the ledger for the run
history costs (issue 19: "opening it must not slow a small explicit run").

    .venv/bin/python scripts/bench_small_run.py                  # this checkout, 20 runs
    .venv/bin/python scripts/bench_small_run.py --source /tmp/baseline --source .  # A/B

Each `--source` is a source tree (a checkout, or `git archive` of an older commit) put first on
PYTHONPATH; their runs are interleaved (A, B, A, B, ...) so that the machine's noise falls on
both alike. Every run loads 100 raw emails into one list of a local emulator (no latency), in
two working directories per source: a new one each time (the first run of a project: the
ledger file is created) and one kept across runs (every later run). Prints medians and
quartiles; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from target_pinterest_audiences.emulator import PinterestEmulator  # noqa: E402

AD_ACCOUNT = "549755885175"
TOKEN = "bench-token"


def _input(rows: int) -> bytes:
    schema = {"type": "object", "properties": {"segment_name": {"type": "string"},
                                               "email": {"type": "string"}}}  # fmt: skip
    lines = [{"type": "SCHEMA", "stream": "small", "schema": schema, "key_properties": []}]
    lines += [
        {"type": "RECORD", "stream": "small",
         "record": {"segment_name": "Small Run", "email": f"user{n}@example.com"}}
        for n in range(rows)
    ]  # fmt: skip
    lines.append({"type": "STATE", "value": {"bookmarks": {}}})
    return "".join(json.dumps(m) + "\n" for m in lines).encode()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _one_run(source: Path, workdir: Path, config: Path, data: bytes) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of the target."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    cpu = _cpu()
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config)],
        input=data,
        capture_output=True,
        cwd=workdir,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({source}):\n{proc.stderr.decode()[-3000:]}")
    return seconds, _cpu() - cpu


def _figures(values: list[tuple[float, float]]) -> str:
    def one(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=4)
        return f"{statistics.median(xs):.3f}s ({q[0]:.3f} to {q[2]:.3f})"

    return f"wall {one([v[0] for v in values])}, CPU {one([v[1] for v in values])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", action="append", type=Path, help="source tree (repeatable)")
    parser.add_argument("--runs", type=int, default=20, help="runs per source and situation")
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the emulator adds to every call"
    )
    args = parser.parse_args()
    sources = [s.resolve() for s in (args.source or [REPO])]
    data = _input(args.rows)
    root = Path(tempfile.mkdtemp(prefix="tpa-small-run-"))
    times: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    try:
        with PinterestEmulator(
            matching_delay=0, min_matched_users=0, access_tokens={TOKEN}, ads_write_per_minute=0,
            ads_read_per_minute=0, latency=args.latency,
        ) as emulator:  # fmt: skip
            config = root / "config.json"
            config.write_text(json.dumps(
                {"ad_account_id": AD_ACCOUNT, "access_token": TOKEN, "api_url": emulator.url}
            ))  # fmt: skip
            for n, source in enumerate(sources):
                (root / f"kept-{n}").mkdir()
                _one_run(source, root / f"kept-{n}", config, data)  # warm: ledger created
            for i in range(args.runs):
                for n, source in enumerate(sources):
                    fresh = root / f"fresh-{n}-{i}"
                    fresh.mkdir()
                    seconds = _one_run(source, fresh, config, data)
                    times.setdefault((source, "first run in a directory"), []).append(seconds)
                    shutil.rmtree(fresh)
                    seconds = _one_run(source, root / f"kept-{n}", config, data)
                    times.setdefault((source, "later run"), []).append(seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"{args.runs} runs each, {args.rows} rows, explicit mode, emulator in this process "
        f"({args.latency:g} s added to every call)"
    )
    for (source, situation), values in times.items():
        print(f"  {source}  {situation:<25} {_figures(values)}")
    print("  (medians, quartiles in brackets)")
    if len(sources) > 1:
        first = sources[0]
        for source in sources[1:]:
            for situation in ("first run in a directory", "later run"):
                pairs = zip(times[(first, situation)], times[(source, situation)], strict=True)
                wall = [b[0] - a[0] for a, b in pairs]
                print(
                    f"  {source.name} - {first.name}, {situation}: median of the paired "
                    f"differences {statistics.median(wall) * 1000:+.0f} ms wall"
                )


if __name__ == "__main__":
    main()
