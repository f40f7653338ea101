"""Issue 20.5: a mistake in the loader's settings reads as one message under ``meltano run``.

A fresh Meltano project (as tests/packaged/test_meltano_hub.py builds it: the loader added
from ``meltano-hub.yml``, installed from the built wheel, a small extractor of the test's own)
whose tap writes far more than a pipe holds. For each common mistake the target stops before
it reads its input; Meltano must then print the target's message, and no traceback of its own
(before the fix: two ``BrokenPipeError`` tracebacks, about 150 lines, after the message).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from target_pinterest_audiences.emulator import DEFAULT_ACCESS_TOKEN, PinterestEmulator
from tests.conftest import AD_ACCOUNT
from tests.distribution import built_dist
from tests.packaged.test_meltano_hub import (
    HUB_FILE,
    LOADER,
    TAP,
    TAP_DEFINITION,
    TAP_SCRIPT,
    Project,
    _new_project,
    _set_pip_url,
)

pytestmark = pytest.mark.meltano

ROWS = 30_000  # about 2 MB of Singer messages: the tap blocks on a full pipe long before


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


MISTAKES = {
    "wrong token": (
        {"access_token": "not-the-token"},
        "Pinterest refused the access token",
    ),
    "missing token": ({"access_token": None}, "No Pinterest credentials"),
    "dead api_url": (
        {"api_url": f"http://127.0.0.1:{_closed_port()}/v5"},
        "Gave up on GET customer_lists (access check)",
    ),
    "streams typo": (
        {"streams": json.dumps({"holiday_shoppers": {"audeince_name": "Holiday"}})},
        "'audeince_name' is not a per-stream setting",
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("mistakes")
    project = _new_project(root, "mistakes")
    project.shell(f"meltano add --plugin-type loader {LOADER} --from-ref {HUB_FILE} --no-install")
    _set_pip_url(project, str(built_dist().wheel))
    (project.root / TAP).write_text(TAP_SCRIPT)
    (project.root / TAP).chmod(0o755)
    (project.root / "tap.yml").write_text(yaml.safe_dump(TAP_DEFINITION))
    project.shell(f"meltano add --plugin-type extractor {TAP} --from-ref tap.yml --no-install")
    rows = [{"segment_name": "Mistakes", "email": f"user{n}@example.com"} for n in range(ROWS)]
    (project.root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    project.shell(f"meltano config set {TAP} path rows.jsonl")
    project.shell(f"meltano config set {TAP} stream holiday_shoppers")
    project.shell(f"meltano config set {LOADER} ad_account_id {AD_ACCOUNT}")
    project.shell("meltano install")
    return project


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_reads_as_the_targets_message_alone(
    project: Project, emulator: PinterestEmulator, mistake: str
) -> None:
    settings, expected = MISTAKES[mistake]
    env = dict(project.env)
    values = {"api_url": emulator.url, "access_token": DEFAULT_ACCESS_TOKEN, **settings}
    for name, value in values.items():
        key = f"TARGET_PINTEREST_AUDIENCES_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    import subprocess

    proc = subprocess.run(
        ["meltano", "run", TAP, LOADER],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output, output[-3000:]
    assert "BrokenPipeError" not in output, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    lines = [line for line in output.splitlines() if line.strip()]
    target_lines = [line for line in lines if f"] {LOADER} " in line]
    assert expected in "\n".join(target_lines[-2:]), "the message is the target's last word"
    after = lines[lines.index(next(line for line in lines if expected in line)) + 1 :]
    assert len(after) <= 5, "\n".join(after)  # Meltano's "Loader failed", "Run completed"
    assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
    Path(project.root / f"{mistake.replace(' ', '-')}.log").write_text(output)
