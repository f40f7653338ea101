"""Shared fixtures: a real Pinterest emulator over HTTP, and a runner for the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator

AD_ACCOUNT = "549755885175"
TOKEN = "test-access-token"
REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.pg"]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def emails(count: int, start: int = 0, domain: str = "example.com") -> list[str]:
    return [f"user{n}@{domain}" for n in range(start, start + count)]


AUDIENCE_SCHEMA = {
    "type": "object",
    "properties": {
        name: {"type": ["string", "null"]}
        for name in (
            "segment_name",
            "segment_id",
            "email",
            "email_sha256",
            "idfa",
            "idfa_sha256",
            "maid",
            "maid_sha256",
            "action",
        )
    },
}


def schema_message(stream: str = "audience") -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": AUDIENCE_SCHEMA, "key_properties": []}


def record_message(stream: str = "audience", **record: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": record}


def audience_messages(
    stream: str,
    segment_name: str | None,
    addresses: Iterable[str],
    action: str | None = "add",
    segment_id: str | None = None,
    field: str = "email",
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [schema_message(stream)]
    for address in addresses:
        record: dict[str, Any] = {field: address}
        if segment_name is not None:
            record["segment_name"] = segment_name
        if segment_id is not None:
            record["segment_id"] = segment_id
        if action is not None:
            record["action"] = action
        messages.append(record_message(stream, **record))
    return messages


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path
    states: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> dict[str, Any]:
        assert self.states, f"no STATE line; stderr:\n{self.stderr[-3000:]}"
        return self.states[-1]

    def entry(self, stream: str = "audience") -> dict[str, Any]:
        return self.state["pinterest_audiences"][stream]


class TargetRunner:
    """Runs the installed CLI in a subprocess, in a working directory of the test's own."""

    def __init__(self, emulator: PinterestEmulator, workdir: Path) -> None:
        self.emulator = emulator
        self.workdir = workdir

    def config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "ad_account_id": AD_ACCOUNT,
            "access_token": TOKEN,
            "api_url": self.emulator.url,
        }
        config.update(overrides)
        return {k: v for k, v in config.items() if v is not None}

    def run(
        self,
        messages: Iterable[dict[str, Any] | str],
        *,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        **config: Any,
    ) -> Run:
        config_path = self.workdir / "config.json"
        config_path.write_text(json.dumps(self.config(**config)))
        lines = "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)
        proc = subprocess.run(
            [sys.executable, "-m", "target_pinterest_audiences", "--config", str(config_path)],
            input=lines.encode(),
            capture_output=True,
            cwd=self.workdir,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            check=False,
        )
        stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
        states = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        return Run(proc.returncode, stdout, stderr, self.workdir, states)


@pytest.fixture
def emulator() -> Iterator[PinterestEmulator]:
    with PinterestEmulator(
        page_size=2,
        matching_delay=0,  # target tests read lists and audiences back as soon as a run ends
        match_fraction=1.0,  # they expect every member sent to count in an audience's size
        min_matched_users=0,  # they send a handful of members, not Pinterest's 100
    ) as server:
        yield server
        assert server.spec_violations == [], server.spec_violations


@pytest.fixture
def target(emulator: PinterestEmulator, tmp_path: Path) -> TargetRunner:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return TargetRunner(emulator, workdir)


def writes(emulator: PinterestEmulator) -> list[Any]:
    return [
        r for r in emulator.requests if r.method in ("POST", "PATCH") and "/oauth/" not in r.path
    ]
