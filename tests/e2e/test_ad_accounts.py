"""Issue 21: an ad account the token may not use, through the real CLI. The emulator refuses it
as Pinterest does (403 code 29 by default, or 404 code 2: which one Pinterest gives is not known,
so both are tried); the run stops at its access check, before it reads any input."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import TOKEN, TargetRunner, writes

NOT_THE_TOKENS = "549755885176"  # the emulator's tokens may use 549755885175 only


@pytest.mark.parametrize(
    ("refusal", "setting"),
    [
        ("forbidden", "ad_account_id"),
        ("not_found", "ad_account_id"),
        ("forbidden", "streams.uk.ad_account_id"),  # a stream's own account
    ],
)
def test_an_ad_account_the_token_may_not_use_stops_the_run_before_anything_is_sent(
    target: TargetRunner, emulator: PinterestEmulator, refusal: str, setting: str
) -> None:
    emulator.configure(ad_account_refusal=refusal)
    if setting == "ad_account_id":
        settings = target.config(ad_account_id=NOT_THE_TOKENS)
    else:
        settings = target.config(streams={"uk": {"ad_account_id": NOT_THE_TOKENS}})
    config = target.workdir / "config.json"
    config.write_text(json.dumps(settings))
    stderr_file = target.workdir / "stderr.txt"
    with stderr_file.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config)],
            stdin=subprocess.PIPE,  # left open and empty: the tap has not written a line yet
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=target.workdir,
        )
        try:
            # The refusal is logged while the tap has not written a line: the target did not
            # wait for input. (It then reads the tap's output to its end, so that the tap is
            # not cut off mid-write: the tap "ends" here.)
            deadline = time.monotonic() + 60
            while "ERROR" not in stderr_file.read_text():
                assert time.monotonic() < deadline, "the run waited for input"
                assert proc.poll() is None or "ERROR" in stderr_file.read_text()
                time.sleep(0.05)
            assert proc.stdin is not None
            proc.stdin.close()
            returncode = proc.wait(timeout=30)
        finally:
            proc.kill()
            assert proc.stdin is not None and proc.stdout is not None
            if not proc.stdin.closed:
                proc.stdin.close()
            stdout = proc.stdout.read()
            proc.stdout.close()
    text = stderr_file.read_text()
    assert returncode == 1 and stdout == b""  # no STATE
    # The access checks (one read per ad account), and nothing else.
    checks = [(r.method, r.path.rsplit("/", 2)[-2:], r.status) for r in emulator.requests]
    assert (
        "GET",
        [NOT_THE_TOKENS, "customer_lists"],
        403 if refusal == "forbidden" else 404,
    ) in checks
    assert all(method == "GET" and path[1] == "customer_lists" for method, path, _ in checks)
    assert writes(emulator) == [] and emulator.lists(NOT_THE_TOKENS) == []
    error = "\n".join(line for line in text.splitlines() if "ERROR" in line)
    assert f"ad account {NOT_THE_TOKENS}" in error or f"({NOT_THE_TOKENS})" in error
    assert f"heck {setting}" in error and "Ads Manager URL" in error
    assert "Traceback" not in text and TOKEN not in text
    print(error)  # what a user sees (pytest -s shows it)
