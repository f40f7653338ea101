"""Hundreds of audiences in one run, end to end through the CLI (issue 17's benchmark).

    .venv/bin/python scripts/bench_many.py                      # S=300, M=2,000, L=3,000, 150 ms
    .venv/bin/python scripts/bench_many.py --streams 20
    .venv/bin/python scripts/bench_many.py --mirror --streams 100 --members 50000

S streams (`--streams`) of M raw emails each (`--members`), as a tap gives them (per stream a
SCHEMA, then its RECORD lines: `segment_name`, `email`, `action`), on the target's standard
input (`python -m target_pinterest_audiences --config ...`), into the bundled emulator
(`pinterest-emulator`, a process of its own) with Pinterest's quotas on (its defaults: 400
writes and 1,000 reads a minute), a fixed latency per call (`--latency`) and, already in the
ad account, L other customer lists (`--other-lists`), each with a CUSTOMER_LIST audience.
`--mirror`: sync_mode mirror (a SQLite ledger in the run's directory). `--accounts N`: the
streams spread over N ad accounts (each seeded with L other lists) through the per-stream
`streams.<name>.ad_account_id` setting.

After the run it checks every list exactly: per stream exactly one list of its name, whose
members in the emulator are exactly the SHA-256 of the lowercased emails sent, and exactly one
CUSTOMER_LIST audience on it (when enough members match, as Pinterest requires); the seeded
lists and audiences unchanged and nothing else created; the STATE the target printed names
those lists and audiences. Then it prints: wall time, the calls by kind and operation (from the
emulator's request log), 429 answers, the largest process of the target's process tree (peak
RSS, sampled), and the quota floor (`quota_floor.py`: a listing of each account, the writes the
run needs, and the read-back, a second listing or reads by id where those are fewer calls,
under the quotas and the latency) with the ratio wall / floor, each next to issue 17's goal
where one applies. Figures, not assertions (the check exits 1 when a list is
wrong).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from measure import Measure, run_measured
from quota_floor import Account, Floor, StreamWrites, quota_floor, stream_writes

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.emulator.matching import count_matched
from target_pinterest_audiences.emulator.options import Options
from target_pinterest_audiences.emulator.spec import Spec

PYTHON = sys.executable
FIRST_ACCOUNT = 549755885175  # the emulator's default ad account (the others are allowed too)
TOKEN = "bench-many-token"
SEEDED_MEMBERS = 3  # members of each seeded list (they are read, never loaded)
SCHEMA = {
    "type": "object",
    "properties": {k: {"type": ["string", "null"]} for k in ("segment_name", "email", "action")},
}


# ---------------------------------------------------------------- the streams
def stream_name(s: int) -> str:
    return f"audience_{s:04d}"


def segment_name(s: int) -> str:
    return f"Bench audience {s:04d}"


def member_hashes(s: int, members: int) -> list[str]:
    """The SHA-256 of the lowercased emails of stream s (what Pinterest must hold)."""
    return [
        hashlib.sha256(f"shopper.{s}.{n}@example.com".encode()).hexdigest() for n in range(members)
    ]


def generate(path: Path, streams: int, members: int) -> None:
    """Singer input: per stream a SCHEMA, then its RECORDs (raw emails, mixed case, spaces)."""
    with path.open("w", buffering=1 << 20) as file:
        for s in range(streams):
            name = stream_name(s)
            file.write(
                json.dumps(
                    {"type": "SCHEMA", "stream": name, "schema": SCHEMA, "key_properties": []}
                )
                + "\n"
            )
            head = (
                f'{{"type":"RECORD","stream":"{name}","record":{{"segment_name":"{segment_name(s)}"'
            )
            file.write(
                "".join(
                    f'{head},"email":" Shopper.{s}.{n}@Example.com","action":"add"}}}}\n'
                    for n in range(members)
                )
            )


# ---------------------------------------------------------------- the emulator
def accounts_of(count: int) -> list[str]:
    return [str(FIRST_ACCOUNT + i) for i in range(count)]


def seed_state(path: Path, accounts: list[str], other_lists: int) -> dict[str, dict[str, Any]]:
    """An emulator state file with `other_lists` lists (and one audience each) per account;
    returns their API views by id, to compare after the run."""
    emulator = PinterestEmulator(access_tokens={TOKEN}, matching_delay=0)
    for account in accounts:
        for i in range(other_lists):
            members = [
                hashlib.sha256(f"old.{account}.{i}.{j}@example.com".encode()).hexdigest()
                for j in range(SEEDED_MEMBERS)
            ]
            list_id = emulator.seed_list(account, f"Old campaign {i:05d}", members)
            emulator.seed_audience(account, f"Old campaign {i:05d} audience", list_id)
    views: dict[str, dict[str, Any]] = {}
    for account in accounts:
        for c in emulator.model.lists_of(account):
            views[c.id] = emulator.operations.list_view(c)
        views.update((a["id"], a) for a in emulator.audiences(account))
    emulator.save_state_file(path)
    return views


class Emulator:
    """`pinterest-emulator` in its own process, loaded from a state file."""

    def __init__(self, state: Path, *, latency: float, matching_delay: float, accounts: list[str]):
        command = [
            str(Path(PYTHON).parent / "pinterest-emulator"),
            "--port",
            "0",
            "--state-file",
            str(state),
            "--access-token",
            TOKEN,
            "--latency",
            str(latency),
            "--matching-delay",
            str(matching_delay),
            "--no-record-bodies",
            *allow_accounts(accounts),
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        if not self.url.startswith("http"):
            raise SystemExit("pinterest-emulator did not start")
        self.root = self.url.removesuffix("/v5")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None:
            answer = self.http.get(f"{self.root}/_emulator/{path}", timeout=600)
        else:
            answer = self.http.post(f"{self.root}/_emulator/{path}", json=body, timeout=600)
        answer.raise_for_status()
        return answer.json()

    def every(self, account: str, kind: str) -> list[dict[str, Any]]:
        """Every item of a list call (quotas lifted first: the run is over)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": 250}
        while True:
            answer = self.http.get(f"{self.url}/ad_accounts/{account}/{kind}", params=params)
            answer.raise_for_status()
            body = answer.json()
            items += body["items"]
            if not body.get("bookmark"):
                return items
            params["bookmark"] = body["bookmark"]

    def cpu_seconds(self) -> float:
        """CPU time the emulator's process has used so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def allow_accounts(accounts: list[str]) -> list[str]:
    """Flags letting the emulator serve these ad accounts (it refuses any other)."""
    return [flag for account in accounts for flag in ("--ad-account", account)]


# ---------------------------------------------------------------- counting calls
@dataclass
class Calls:
    by_kind: Counter[str] = field(default_factory=Counter)  # read, write, token
    by_operation: Counter[str] = field(default_factory=Counter)  # operationId
    statuses: Counter[int] = field(default_factory=Counter)

    def operation(self, *names: str) -> int:
        return sum(self.by_operation[n] for n in names)


def count_calls(log: list[dict[str, Any]]) -> Calls:
    categories = {op.operation_id: op.ratelimit_category for op in Spec().operations}
    kinds = {"ads_read": "read", "ads_write": "write"}
    calls = Calls()
    for request in log:
        operation = request.get("operation") or f"{request['method']} {request['path']}"
        if operation == "oauth/token":
            kind = "token"
        else:
            kind = kinds.get(categories.get(operation) or "", "other")
        calls.by_kind[kind] += 1
        calls.by_operation[operation] += 1
        calls.statuses[int(request["status"])] += 1
    return calls


# ---------------------------------------------------------------- checking every list
def check(
    emulator: Emulator,
    accounts: list[str],
    account_of: dict[int, str],
    expected_audience: dict[int, bool],
    members: int,
    seeded: dict[str, dict[str, Any]],
    state_path: Path,
) -> list[str]:
    """What is wrong (nothing: every list exact); see the module's docstring."""
    wrong: list[str] = []
    lists = {a: emulator.every(a, "customer_lists") for a in accounts}
    audiences = {a: emulator.every(a, "audiences") for a in accounts}
    entries = last_state(state_path)
    found_lists: set[str] = set()
    found_audiences: set[str] = set()
    for s, account in sorted(account_of.items()):
        name = segment_name(s)
        named = [c for c in lists[account] if c["name"] == name]
        if len(named) != 1:
            wrong.append(f"{name}: {len(named)} lists of that name in account {account}")
            continue
        list_id = named[0]["id"]
        found_lists.add(list_id)
        got = set(emulator.control(f"lists/{list_id}")["members"])
        if got != set(member_hashes(s, members)):
            wrong.append(f"{name}: members differ ({len(got):,} in the list, {members:,} sent)")
        on_list = [
            a
            for a in audiences[account]
            if a["audience_type"] == "CUSTOMER_LIST"
            and a["rule"].get("customer_list_id") == list_id
        ]
        found_audiences.update(a["id"] for a in on_list)
        if len(on_list) != int(expected_audience[s]):
            wrong.append(f"{name}: {len(on_list)} CUSTOMER_LIST audiences on list {list_id}")
        entry = entries.get(stream_name(s), {})
        audience_id = on_list[0]["id"] if len(on_list) == 1 else None
        if (entry.get("customer_list_id"), entry.get("audience_id")) != (list_id, audience_id):
            wrong.append(f"{name}: STATE says {entry or 'nothing'}")
    for account in accounts:
        for item in lists[account] + audiences[account]:
            ident = item["id"]
            if ident in found_lists or ident in found_audiences:
                continue
            if ident not in seeded:
                wrong.append(f"account {account}: {item['type']} {ident} was created, unasked")
            elif item != seeded[ident]:
                wrong.append(f"account {account}: seeded {item['type']} {ident} changed")
    missing = set(seeded) - {i["id"] for a in accounts for i in lists[a] + audiences[a]}
    if missing:
        wrong.append(f"{len(missing)} seeded lists or audiences are gone")
    for ident, view in seeded.items():
        if view["type"] == "customerlist":
            got = emulator.control(f"lists/{ident}")
            if got["member_count"] != SEEDED_MEMBERS or got["num_batches"] != 1:
                wrong.append(f"seeded list {ident}: its members changed")
    return wrong


def last_state(path: Path) -> dict[str, Any]:
    """The streams' entries in the last STATE line the target printed."""
    entries: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        message = json.loads(line)
        if isinstance(message, dict) and "pinterest_audiences" in message:
            entries = message["pinterest_audiences"]
        elif isinstance(message, dict) and message.get("type") == "STATE":
            entries = message.get("value", {}).get("pinterest_audiences", entries)
    return entries


# ---------------------------------------------------------------- the report
def report(
    args: argparse.Namespace,
    measure: Measure,
    calls: Calls,
    floor: Floor,
    accounts: list[Account],
    wrong: list[str],
    emulator_cpu: float,
) -> str:
    rows: list[tuple[str, str, str]] = []  # what, measured, goal

    def row(what: str, measured: str, goal: str = "", met: bool | None = None) -> None:
        mark = "" if met is None else ("  met" if met else "  NOT MET")
        rows.append((what, measured, goal + mark))

    goal_wall = 1.25 * floor.seconds
    row(
        "wall time",
        f"{measure.seconds:,.1f} s",
        f"<= {goal_wall:,.1f} s (1.25x floor)",
        measure.seconds <= goal_wall,
    )
    row(
        "quota floor",
        f"{floor.seconds:,.1f} s",
        f"listing {floor.first_listing:.1f} + writes {floor.writes:.1f} "
        f"+ read-back {floor.read_back:.1f} s",
    )
    ratio = measure.seconds / floor.seconds if floor.seconds else float("inf")
    row("wall / floor", f"{ratio:,.2f}x", "<= 1.25x", ratio <= 1.25)
    budget = sum(4 * a.pages_after + 1 for a in accounts)
    reads = calls.by_kind["read"]
    row(
        "read calls",
        f"{reads:,}",
        f"<= {budget:,} (4 listings of {'/'.join(str(a.pages_after) for a in accounts)} pages"
        " + 1, per account)",
        reads <= budget,
    )
    row("  list pages", f"{calls.operation('customer_lists/list', 'audiences/list'):,}")
    row("  gets", f"{calls.operation('customer_lists/get', 'audiences/get'):,}")
    row("write calls", f"{calls.by_kind['write']:,}", f"the run needs {floor.write_calls:,}")
    row(
        "  creates",
        f"{calls.operation('customer_lists/create', 'audiences/create'):,}",
        f"lists {calls.by_operation['customer_lists/create']:,}, "
        f"audiences {calls.by_operation['audiences/create']:,}",
    )
    row("  updates", f"{calls.operation('customer_lists/update', 'audiences/update'):,}")
    row("token calls", f"{calls.by_kind['token']:,}")
    if calls.by_kind["other"]:
        row("other calls", f"{calls.by_kind['other']:,}")
    too_many = calls.statuses[429]
    row("429 answers", f"{too_many:,}", "0", too_many == 0)
    others = {s: n for s, n in calls.statuses.items() if s >= 300 and s != 429}
    if others:
        row("other errors", ", ".join(f"{n:,} x {s}" for s, n in sorted(others.items())))
    which = "the main process" if measure.largest_is_root else "a child process"
    row(
        "largest process",
        f"{measure.largest_mb:,.0f} MB",
        f"<= 250 MB ({which}, of {measure.processes} sampled)",
        measure.largest_mb <= 250,
    )
    row(
        "emulator CPU",
        f"{emulator_cpu:,.1f} s",
        "its own process: what emulating the run cost, beside the wall time",
    )
    row(
        "lists",
        "exact" if not wrong else f"{len(wrong)} WRONG",
        "every list exact, one audience each",
        not wrong,
    )
    mode = "mirror" if args.mirror else "explicit"
    lines = [
        f"bench_many: S={args.streams:,} streams x M={args.members:,} members ({mode}), "
        f"L={args.other_lists:,} other lists with audiences in each of {args.accounts} "
        f"account(s), {args.latency:g} s a call, quotas {Options().ads_write_per_minute} "
        f"writes / {Options().ads_read_per_minute} reads a minute, {os.cpu_count()} cores",
        "",
        f"{'':<18} {'measured':>12}   goal (issue 17)",
    ]
    lines += [f"{what:<18} {measured:>12}   {goal}".rstrip() for what, measured, goal in rows]
    if wrong:
        lines += ["", "what is wrong (first 20):", *(f"  {w}" for w in wrong[:20])]
    return "\n".join(lines)


# ---------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=300, help="S (default 300)")
    parser.add_argument("--members", type=int, default=2000, help="M per stream (default 2000)")
    parser.add_argument(
        "--other-lists", type=int, default=3000, help="L per account (default 3000)"
    )
    parser.add_argument("--latency", type=float, default=0.15, help="seconds a call (0.15)")
    parser.add_argument("--mirror", action="store_true", help="sync_mode mirror")
    parser.add_argument("--accounts", type=int, default=1, help="ad accounts (default 1)")
    parser.add_argument(
        "--matching-delay",
        type=float,
        default=0.5,
        help="the emulator's seconds of matching after an upload (default 0.5)",
    )
    parser.add_argument("--work", help="directory for the input and the run (default: temp)")
    parser.add_argument("--log", help="where to keep the target's log (stderr)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's directory (config, STATE, ledger)"
    )
    args = parser.parse_args()
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tpa-bench-many-", dir=args.work))
    accounts = accounts_of(args.accounts)
    account_of = {s: accounts[s % len(accounts)] for s in range(args.streams)}

    print(f"generating {args.streams:,} streams of {args.members:,} emails in {work} ...")
    started = time.perf_counter()
    source = work / "input.jsonl"
    generate(source, args.streams, args.members)
    minimum, fraction = Options().min_matched_users, Options().match_fraction
    expected_audience = {
        s: count_matched(member_hashes(s, args.members), fraction) >= minimum
        for s in range(args.streams)
    }
    state = work / "emulator-state.json"
    seeded = seed_state(state, accounts, args.other_lists)
    print(f"  input and seed ready in {time.perf_counter() - started:.1f} s", flush=True)

    writes: list[StreamWrites] = [
        stream_writes(args.members, audience=expected_audience[s]) for s in range(args.streams)
    ]
    sizes = []
    for account in accounts:
        lists = sum(1 for s in account_of if account_of[s] == account)
        audiences = sum(1 for s in account_of if account_of[s] == account and writes[s].audience)
        total = args.other_lists
        sizes.append(Account(total, total, total + lists, total + audiences, lists + audiences))
    floor = quota_floor(
        sizes,
        writes,
        latency=args.latency,
        writes_per_minute=Options().ads_write_per_minute,
        reads_per_minute=Options().ads_read_per_minute,
    )

    emulator = Emulator(
        state, latency=args.latency, matching_delay=args.matching_delay, accounts=accounts
    )
    try:
        config: dict[str, Any] = {
            "ad_account_id": accounts[0],
            "access_token": TOKEN,
            "api_url": emulator.url,
        }
        if args.mirror:
            config["sync_mode"] = "mirror"
        if args.accounts > 1:
            config["streams"] = {
                stream_name(s): {"ad_account_id": a} for s, a in account_of.items()
            }
        run_dir = work / "run"
        run_dir.mkdir()
        config_path = run_dir / "config.json"
        config_path.write_text(json.dumps(config))
        print(f"running the target ({args.streams:,} streams) ...", flush=True)
        cpu_before = emulator.cpu_seconds()
        state_out = run_dir / "state.jsonl"
        measure = run_measured(
            [PYTHON, "-m", "target_pinterest_audiences", "--config", str(config_path)],
            cwd=run_dir,
            stdin=source,
            stdout=state_out,
            log=Path(args.log) if args.log else None,
        )
        emulator_cpu = emulator.cpu_seconds() - cpu_before
        print(f"  done in {measure.seconds:.1f} s; checking every list ...", flush=True)
        calls = count_calls(emulator.control("requests")["requests"])
        emulator.control(
            "config", {"ads_read_per_minute": 0, "ads_write_per_minute": 0, "latency": 0}
        )
        wrong = check(
            emulator, accounts, account_of, expected_audience, args.members, seeded, state_out
        )
    finally:
        emulator.close()
    print()
    print(report(args, measure, calls, floor, sizes, wrong, emulator_cpu))
    if args.keep:
        source.unlink()
        print(f"\nthe run's directory: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
