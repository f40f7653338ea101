"""The README a user copies from (issue 11.10): its blocks parse, and what they name exists.

The Meltano blocks are checked by tests/packaged/test_meltano_hub.py; here: the two first
commands, the stream maps example (run through the CLI, in both sync modes), and the emulator
section (its command, flags, default token and ad account, and control endpoints).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from target_pinterest_audiences.emulator import (
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_REFRESH_TOKEN,
    PinterestEmulator,
)
from tests.conftest import AD_ACCOUNT, REPO, TargetRunner, record_message, schema_message, sha

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    start = README.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    rest = README[start + len(heading) + 2 :]
    end = re.search(rf"^{level} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_first_two_commands_exist() -> None:
    first, second = blocks(README[: README.index("\n---\n")], "bash")
    assert "scripts/demo.py" in first and (REPO / "scripts" / "demo.py").is_file()
    assert second.strip() == "scripts/test.sh" and (REPO / "scripts" / "test.sh").is_file()
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_the_demo_succeeds_and_leaves_nothing_behind(tmp_path: Path) -> None:
    # 20.6: its temporary config (and the target's own directory) are removed at the end.
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Demo succeeded." in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sync_mode", ["explicit", "mirror"])
def test_the_stream_maps_example_splits_one_stream_into_lists(
    target: TargetRunner, emulator: PinterestEmulator, sync_mode: str
) -> None:
    (example,) = blocks(section("## One stream, several lists"), "json")
    config = json.loads(example)
    names = ["Holiday Shoppers", "Lapsed Customers"]
    messages = [schema_message("audience")]
    messages += [
        record_message("audience", segment_name=names[n % 2], email=f"user{n}@example.com")
        for n in range(10)
    ]
    run = target.run(messages, sync_mode=sync_mode, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.state["pinterest_audiences"]) == {"holiday_shoppers", "lapsed_customers"}
    lists = {item["name"]: item["id"] for item in emulator.lists(AD_ACCOUNT)}
    assert set(lists) == set(names)
    for k, name in enumerate(names):
        expected = {sha(f"user{n}@example.com") for n in range(k, 10, 2)}
        assert emulator.members(AD_ACCOUNT, lists[name]) == expected


def test_the_emulator_section_names_what_exists(emulator: PinterestEmulator) -> None:
    text = section("## The emulator, for your own pipeline tests")
    command = shutil.which("pinterest-emulator", path=str(Path(sys.executable).parent))
    assert command is not None, "the console script is installed beside the target"
    assert "pinterest-emulator --port 8765" in text
    help_text = subprocess.run(
        [command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in set(re.findall(r"`(--[a-z][a-z-]+)", text)) - {"--flag"}:
        assert flag in help_text, f"the README shows {flag}, which --help does not know"
    for value in (DEFAULT_ACCESS_TOKEN, DEFAULT_REFRESH_TOKEN, DEFAULT_CLIENT_ID, AD_ACCOUNT):
        assert f"`{value}`" in text
    endpoints = re.findall(r"\| `((?:GET|POST|DELETE)[^`]*) (/_emulator/[a-z_/{}]+)`", text)
    assert len(endpoints) >= 8
    for methods, path in endpoints:
        method = methods.split()[0]
        concrete = path.replace("{id}", "1")
        request = urllib.request.Request(
            emulator.root_url + concrete,
            method=method,
            data=b"{}" if method == "POST" else None,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        # 400 is fine (the body is empty here); 404 would mean the endpoint does not exist
        assert status != 404 or "{id}" in path, f"{method} {path} -> {status}"
    emulator.reset()  # the probes above seeded and reset nothing of the tests' state
