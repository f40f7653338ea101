"""Mirror mode at scale, end to end through the CLI: the first fill and the daily re-sync.

    .venv/bin/python scripts/bench_mirror.py --members 10000000            # SQLite ledger
    .venv/bin/python scripts/bench_mirror.py --members 10000000 --postgres # and on PostgreSQL
    .venv/bin/python scripts/bench_mirror.py --members 1000000 --skip-floor

On generated input of N raw emails (one stream, one list):
  * first fill: the ledger is empty, all N are sent as ADD;
  * daily re-sync: the next day's input holds N members again, of whom N/10 joined and N/10
    left: exactly the joiners must go out as ADD and the leavers as REMOVE.
Pinterest is played by a stand-in that answers at once (no matching, no quota, no request
validation: the emulator's own CPU would otherwise share the two cores with the target); it
keeps an order-free checksum of the hashes it received per operation, which this script
compares with the expected joiners and leavers. Beside the runs, in the same run, the one-core
floor on the same input (`bench_floor.py`: parse, normalize, hash, join; no HTTP, no diff).

Prints the wall time of each run and the largest peak RSS of any one of its processes (VmHWM,
sampled every 100 ms; the target's reader workers are processes of their own). Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from measure import Measure, run_measured

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AD_ACCOUNT = "549755885175"
TOKEN = "bench-token"
SEGMENT = "Daily Mirror"
MASK = (1 << 64) - 1


# ---------------------------------------------------------------- checksums of hash sets
def checksum(digests: bytes) -> tuple[int, int, int]:
    """(count, sum of first 8 bytes, sum of next 8 bytes) of a blob of 32-byte digests, mod 2^64:
    order-free, and a duplicate or a missing member changes it."""
    first = second = 0
    for a, b in struct.iter_unpack(">QQ16x", digests):
        first += a
        second += b
    return len(digests) // 32, first & MASK, second & MASK


def add_checksums(x: tuple[int, int, int], y: tuple[int, int, int]) -> tuple[int, int, int]:
    return x[0] + y[0], (x[1] + y[1]) & MASK, (x[2] + y[2]) & MASK


# ---------------------------------------------------------------- the stand-in for Pinterest
class StandIn(BaseHTTPRequestHandler):
    """Answers the calls the target makes, at once; tallies ADD and REMOVE hashes."""

    protocol_version = "HTTP/1.1"
    lists: dict[str, dict] = {}
    audiences: dict[str, dict] = {}
    tally: dict[str, tuple[int, int, int]] = {}
    calls: dict[str, int] = {}
    lock = threading.Lock()
    next_id = [549755813889]

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _new_id(self) -> str:
        with self.lock:
            self.next_id[0] += 1
            return str(self.next_id[0])

    def _count(self, operation: str, records: str) -> None:
        digests = bytes.fromhex(records.replace(",", ""))
        sums = checksum(digests)
        with self.lock:
            self.tally[operation] = add_checksums(self.tally.get(operation, (0, 0, 0)), sums)
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/_bench/tally":
            with self.lock:
                body = {"tally": dict(self.tally), "calls": dict(self.calls)}
                self.tally.clear()
                self.calls.clear()
            return self._answer(200, body)
        if path.endswith("/customer_lists"):
            return self._answer(200, {"items": list(self.lists.values()), "bookmark": None})
        if path.endswith("/audiences"):
            return self._answer(200, {"items": list(self.audiences.values()), "bookmark": None})
        ident = path.rsplit("/", 1)[-1]
        found = self.lists.get(ident) or self.audiences.get(ident)
        return self._answer(200 if found else 404, found or {"code": 404, "message": "no"})

    def do_POST(self) -> None:
        body = self._body()
        if self.path.split("?", 1)[0].endswith("/customer_lists"):
            ident = self._new_id()
            records = body.pop("records")
            self._count("ADD", records)
            item = {
                "id": ident,
                "ad_account_id": AD_ACCOUNT,
                "name": body["name"],
                "list_type": body["list_type"],
                "status": "READY",
                "type": "customerlist",
                "num_batches": 1,
                "num_removed_user_records": 0,
                "created_time": 1,
                "num_uploaded_user_records": records.count(",") + 1,
                "updated_time": 1,
            }
            self.lists[ident] = item
            return self._answer(200, item)
        ident = self._new_id()
        item = {
            "id": ident,
            "ad_account_id": AD_ACCOUNT,
            "name": body["name"],
            "size": 0,
            "description": body.get("description"),
            "audience_type": "CUSTOMER_LIST",
            "rule": body.get("rule"),
            "status": "READY",
            "type": "audience",
        }
        self.audiences[ident] = item
        return self._answer(200, item)

    def do_PATCH(self) -> None:
        body = self._body()
        ident = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        if ident in self.audiences:
            self.audiences[ident].update(name=body.get("name"), description=body.get("description"))
            return self._answer(200, self.audiences[ident])
        item = self.lists[ident]
        records = body["records"]
        self._count(body["operation_type"], records)
        field = "uploaded" if body["operation_type"] == "ADD" else "removed"
        with self.lock:
            item[f"num_{field}_user_records"] += records.count(",") + 1
        return self._answer(200, item)


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# ---------------------------------------------------------------- input and expectations
def email(n: int) -> str:
    return f"member.{n}@example.com"


def generate(path: Path, first: int, stop: int) -> None:
    """Singer input of the members first..stop-1 as raw emails (mixed case, spaces)."""
    schema = {
        "type": "object",
        "properties": {k: {"type": ["string", "null"]} for k in ("segment_name", "email")},
    }
    with path.open("w", buffering=1 << 20) as file:
        file.write(
            json.dumps(
                {"type": "SCHEMA", "stream": "mirror", "schema": schema, "key_properties": []}
            )
            + "\n"
        )
        head = '{"type":"RECORD","stream":"mirror","record":{"segment_name":"' + SEGMENT
        for start in range(first, stop, 100_000):
            file.write(
                "".join(
                    f'{head}","email":" Member.{n}@Example.com"}}}}\n'
                    for n in range(start, min(stop, start + 100_000))
                )
            )


def expected(first: int, stop: int) -> tuple[int, int, int]:
    sums = (0, 0, 0)
    for start in range(first, stop, 100_000):
        blob = b"".join(
            hashlib.sha256(email(n).encode()).digest()
            for n in range(start, min(stop, start + 100_000))
        )
        sums = add_checksums(sums, checksum(blob))
    return sums


# ---------------------------------------------------------------- the runs
def fetch(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.loads(answer.read())


def run_pair(
    label: str,
    base: dict,
    work: Path,
    day1: Path,
    day2: Path,
    members: int,
    stand_in: str,
    logs: Path | None = None,
) -> list[tuple[str, Measure, str]]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    config = run_dir / "config.json"
    config.write_text(json.dumps(base))
    command = [str(Path(PYTHON).parent / "target-pinterest-audiences"), "--config", str(config)]
    churn = members // 10
    results = []
    fetch(f"{stand_in}/_bench/tally")  # start from a clean tally
    for run, source, want in (
        ("first fill", day1, {"ADD": expected(0, members)}),
        (
            "daily re-sync",
            day2,
            {"ADD": expected(members, members + churn), "REMOVE": expected(0, churn)},
        ),
    ):
        log = logs / f"{label}-{run.replace(' ', '-')}.log" if logs else None
        measure = run_measured([*command, "--input", str(source)], cwd=run_dir, log=log)
        got = fetch(f"{stand_in}/_bench/tally")
        tally = {op: tuple(v) for op, v in got["tally"].items()}
        calls = got["calls"]
        verdict = "exact" if tally == want else f"WRONG: got {tally}, want {want}"
        sent = ", ".join(f"{tally[op][0]:,} {op} in {calls[op]} calls" for op in sorted(tally))
        results.append((f"{label}: {run}", measure, f"{verdict} ({sent})"))
        print(f"  {label}: {run}: {measure.seconds:.1f}s, {verdict}", flush=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run both on a PostgreSQL ledger (a throwaway server)",
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--work", help="directory for the generated input (default: a temp dir)")
    parser.add_argument("--logs", help="directory to keep each run's log in (stderr)")
    args = parser.parse_args()
    logs = Path(args.logs) if args.logs else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    members, churn = args.members, args.members // 10
    work = Path(tempfile.mkdtemp(prefix="tpa-bench-mirror-", dir=args.work))
    day1, day2 = work / "day1.jsonl", work / "day2.jsonl"
    print(
        f"generating {members:,} members (and the next day's, {churn:,} joined and "
        f"{churn:,} left) in {work} ...",
        flush=True,
    )
    generate(day1, 0, members)
    generate(day2, churn, members + churn)
    server = subprocess.Popen([PYTHON, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    stand_in = server.stdout.readline().strip()
    base = {
        "ad_account_id": AD_ACCOUNT,
        "access_token": TOKEN,
        "api_url": f"{stand_in}/v5",
        "sync_mode": "mirror",
        "max_requests_per_minute": 1_000_000,
        "max_removal_fraction": 1.0,
    }
    rows: list[tuple[str, Measure, str]] = []
    try:
        if not args.skip_floor:
            floor = run_measured(
                [PYTHON, str(REPO / "scripts" / "bench_floor.py"), str(day2)], cwd=work
            )
            rows.append(("floor (1 core: parse, normalize, hash, join)", floor, ""))
            print(f"  floor: {floor.seconds:.1f}s", flush=True)
        if not args.skip_sqlite:
            rows += run_pair("SQLite", base, work, day1, day2, members, stand_in, logs)
        if args.postgres:
            sys.path.insert(0, str(REPO))
            from tests.pg import PostgresServer

            with PostgresServer() as pg:
                url = pg.url
                rows += run_pair(
                    "PostgreSQL",
                    {**base, "ledger_url": url},
                    work,
                    day1,
                    day2,
                    members,
                    stand_in,
                    logs,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"members: {members:,}; churn {churn:,} joined and {churn:,} left; {os.cpu_count()} cores"
    )
    print(f"{'run':<46} {'seconds':>8} {'x floor':>8} {'largest process MB':>19} {'processes':>9}")
    floor_s = rows[0][1].seconds if not args.skip_floor else None
    for label, m, _ in rows:
        ratio = f"{m.seconds / floor_s:.2f}" if floor_s else "-"
        print(f"{label:<46} {m.seconds:>8.1f} {ratio:>8} {m.largest_mb:>19.0f} {m.processes:>9}")
    by_label = {label: m for label, m, _ in rows}
    for run in ("first fill", "daily re-sync"):
        lite, pg = by_label.get(f"SQLite: {run}"), by_label.get(f"PostgreSQL: {run}")
        if lite and pg:
            print(f"PostgreSQL / SQLite, {run}: {pg.seconds / lite.seconds:.2f}x")
    print()
    for label, _, check in rows:
        if check:
            print(f"membership check, {label}: {check}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
