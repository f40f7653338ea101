"""Issue 11, "a newcomer's first hour": errors that point the right way, early (through the CLI)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, TargetRunner, audience_messages, emails


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("dry_run", [False, True])
def test_credentials_are_checked_before_any_input_is_read(
    target: TargetRunner, dry_run: bool
) -> None:
    # 11.4: the tap has not written a line yet (stdin stays open); the target fails at once.
    config = target.workdir / "config.json"
    config.write_text(json.dumps(target.config(access_token="revoked", dry_run=dry_run)))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=target.workdir,
    )
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        assert proc.stdin is not None
        proc.stdin.close()
    assert proc.returncode == 1
    assert time.monotonic() - started < 30
    text = stderr.decode()
    assert "Pinterest refused the access token" in text and "access_token" in text
    assert "Traceback" not in text


def test_an_api_url_without_the_version_is_named_with_the_account(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    # 11.6: the warning at start, and the 404's hint names both settings and the /v5.
    run = target.run(audience_messages("audience", "V", emails(3)), api_url=emulator.root_url)
    emulator.spec_violations.clear()  # the emulator noted the unknown path: that is the point
    assert run.returncode == 1 and run.states == []
    warning = next(line for line in run.stderr.splitlines() if "WARNING" in line)
    assert "does not end in a version path such as /v5" in warning
    error = "\n".join(line for line in run.stderr.splitlines() if "ERROR" in line)
    assert f"ad_account_id ({AD_ACCOUNT})" in error and "api_url" in error
    assert "should end in /v5" in error


def test_a_host_that_refuses_connections_is_named_and_given_up_on_quickly(
    target: TargetRunner,
) -> None:
    # 11.7: a refused connection gets a short budget and names the host and port.
    port = closed_port()
    run = target.run(
        audience_messages("audience", "R", emails(3)), api_url=f"http://127.0.0.1:{port}/v5"
    )
    assert run.returncode == 1 and run.states == []
    assert f"could not connect to 127.0.0.1:{port}: connection refused" in run.stderr
    waited = re.search(r"after \d+ attempt\(s\) and ([\d.]+)s of waiting", run.stderr)
    assert waited is not None, run.stderr[-2000:]
    assert float(waited.group(1)) < 10  # the budget of resets and timeouts is minutes
    assert "Traceback" not in run.stderr
    # 20.6: said once ("Giving up on ..." was logged before the error said "Gave up on ...")
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len([line for line in errors if "connection refused" in line]) == 1, errors


# ---- issue 20.5: a target that fails early reads what the tap still sends ----------------------


def _feed(proc: subprocess.Popen[bytes], lines: bytes, broken: list[BaseException]) -> None:
    assert proc.stdin is not None
    try:
        for start in range(0, len(lines), 1 << 16):
            proc.stdin.write(lines[start : start + (1 << 16)])
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError) as error:
        broken.append(error)


@pytest.mark.parametrize(
    "mistake",
    [
        {"access_token": "revoked"},  # refused by Pinterest at the access check
        {"streams": {"audience": {"audeince_name": "x"}}},  # a typo, refused by config_check
    ],
)
def test_a_target_that_fails_early_lets_the_tap_finish_writing(
    target: TargetRunner, mistake: dict[str, object]
) -> None:
    # 20.5: a tap writing 4 MB (far more than a pipe holds) into a target that refused to start.
    # Without the target reading it to the end, the tap's writes fail with a broken pipe (under
    # Meltano: two BrokenPipeError tracebacks after the target's message).
    config = target.workdir / "config.json"
    config.write_text(json.dumps(target.config(**mistake)))
    lines = "".join(
        json.dumps(message) + "\n" for message in audience_messages("audience", "T", emails(50_000))
    ).encode()
    assert len(lines) > 4_000_000
    log = target.workdir / "stderr.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=target.workdir,
        )
        broken: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(proc, lines, broken))
        feeder.start()
        feeder.join(timeout=60)
        proc.wait(timeout=60)
    assert proc.returncode == 1
    assert broken == [], "the target exited while the tap was still writing"
    text = log.read_text()
    assert "Traceback" not in text
    assert ("refused the access token" in text) or ("audeince_name" in text), text[-2000:]
    assert text.strip().splitlines()[-1].count("ERROR") == 1  # the message is the last line
