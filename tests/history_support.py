"""Run histories for the report's tests: as runs of the target write them, made up in bulk.

`daily_history` writes, through the ledger's own history table, what a stream's daily runs
would have written: a mirror stream whose list grows and whose audience catches up (Pinterest
matches asynchronously), with a failure now and then, and an explicit stream beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from target_pinterest_audiences.history.record import iso
from target_pinterest_audiences.ledger import RunRecord, open_ledger
from tests.conftest import AD_ACCOUNT

START = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
REPORT = Path(sys.executable).parent / "pinterest-audiences-report"


def mirror_run(n: int, stream: str = "holiday_shoppers", *, failed: bool = False) -> RunRecord:
    at = START + dt.timedelta(days=n, minutes=(n * 7) % 40)
    members = 40_000 + 900 * n - (n % 9) * 300
    matched = int(members * min(0.68, 0.30 + 0.012 * n))
    common = {
        "ad_account_id": AD_ACCOUNT, "stream": stream, "started_at": iso(at),
        "finished_at": iso(at + dt.timedelta(seconds=40 + n % 30)), "sync_mode": "mirror",
        "segment_name": "Holiday Shoppers", "list_type": "EMAIL", "rows_read": members + 120,
        "calls": 12 + n % 5, "retries": n % 3, "quota_wait_seconds": float(n % 4),
    }  # fmt: skip
    if failed:
        return RunRecord(
            **common,
            outcome="failed",
            message=(
                f"Stream '{stream}' failed: Pinterest's write quota is used up; it resets in "
                "3.2 hours. The next run repeats only what is needed."
            ),
            records_invalid=120,
            invalid_by_reason={"invalid_email": 118, "missing_identifier": 2},
        )
    return RunRecord(
        **common,
        outcome="synced",
        customer_list_id="549755813889",
        audience_id="549755813890",
        records_added=1_400 + (n * 37) % 900 if n else 40_000,
        records_removed=300 + (n * 53) % 500 if n else 0,
        records_invalid=120,
        invalid_by_reason={"invalid_email": 118, "missing_identifier": 2},
        list_status="READY",
        audience_status="READY" if matched >= 100 else "TOO_SMALL",
        audience_size=matched,
        members=members,
        match_rate=round(matched / members, 4),
        synced_at=iso(at + dt.timedelta(seconds=40)).split(".")[0] + "Z",
    )


def explicit_run(n: int, stream: str = "lapsed_customers") -> RunRecord:
    at = START + dt.timedelta(days=n, minutes=50)
    return RunRecord(
        ad_account_id=AD_ACCOUNT,
        stream=stream,
        started_at=iso(at),
        finished_at=iso(at + dt.timedelta(seconds=12)),
        outcome="synced",
        sync_mode="explicit",
        segment_name="Lapsed Customers",
        customer_list_id="549755813891",
        audience_id="549755813892",
        list_type="EMAIL",
        rows_read=2_000 + 40 * n,
        records_added=1_800 + 30 * n,
        records_removed=200 + 10 * n,
        records_invalid=0,
        list_status="READY",
        audience_status="READY",
        audience_size=9_000 + 160 * n,
        synced_at=iso(at + dt.timedelta(seconds=12)).split(".")[0] + "Z",
        calls=3,
        retries=0,
        quota_wait_seconds=0.0,
    )


def daily_history(workdir: Path, days: int, *, explicit: bool = True) -> int:
    """`days` daily runs of a mirror stream (every 17th failed) and, with `explicit`, of an
    explicit stream, in the default ledger under `workdir`; how many runs were written."""
    written = 0
    with open_ledger(None, base_dir=workdir) as ledger:
        history = ledger.history()
        for n in range(days):
            history.add(mirror_run(n, failed=n % 17 == 16))
            written += 1
            if explicit:
                history.add(explicit_run(n))
                written += 1
    return written


def report(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pinterest-audiences-report ARGS` run in `workdir`, as a user runs it (the console
    script installed beside this Python)."""
    return subprocess.run(
        [str(REPORT), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def report_json(workdir: Path, *args: str) -> dict:
    proc = report(workdir, "--format", "json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
