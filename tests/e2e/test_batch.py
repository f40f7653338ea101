"""BATCH messages: an SDK tap's JSONL batch files load exactly like the same rows as RECORDs.

A tiny Meltano SDK tap (written below, run as a real process) emits the same audience rows
either as RECORD messages or, with ``batch_config``, as BATCH messages pointing at JSONL files
(plain or gzip). Both outputs go through the target's CLI into fresh emulators, and the
resulting customer lists, audiences, memberships and STATE counts must be the same.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import AD_ACCOUNT, TargetRunner, schema_message, sha

TAP_SOURCE = '''
"""A minimal Singer SDK tap: one stream per entry of config["streams"], rows from JSON files."""
import json

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

SCHEMA = th.PropertiesList(
    th.Property("segment_name", th.StringType),
    th.Property("email", th.StringType),
    th.Property("maid", th.StringType),
    th.Property("action", th.StringType),
    th.Property("note", th.StringType),
).to_dict()


class RowsStream(Stream):
    schema = SCHEMA

    def __init__(self, tap, name, path):
        self.rows_path = path
        super().__init__(tap, schema=SCHEMA, name=name)

    def get_records(self, context):
        with open(self.rows_path) as f:
            yield from json.load(f)


class TapAudienceRows(Tap):
    name = "tap-audience-rows"
    config_jsonschema = th.PropertiesList(
        th.Property("streams", th.ObjectType(), required=True),
    ).to_dict()

    def discover_streams(self):
        return [RowsStream(self, name, path) for name, path in self.config["streams"].items()]


if __name__ == "__main__":
    TapAudienceRows.cli()
'''


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Two streams (two lists): adds, duplicates, removes, an invalid row, a MAID list."""
    shoppers: list[dict[str, Any]] = [
        {"segment_name": "Batch Shoppers", "email": f"User{n}@Example.com ", "action": "add"}
        for n in range(37)
    ]
    shoppers += [
        {"segment_name": "Batch Shoppers", "email": "user3@example.com", "action": "add"},
        {"segment_name": "Batch Shoppers", "email": "user5@example.com", "action": "remove"},
        {"segment_name": "Batch Shoppers", "email": "not-an-address", "action": "add"},
        {"segment_name": "Batch Shoppers", "email": "late@example.com", "note": "x"},
    ]
    maids = [
        {"segment_name": "Batch Devices", "maid": f"6D92078A-8246-4BA4-AE5B-76104861E{n:03d}"}
        for n in range(12)
    ]
    return {"shoppers": shoppers, "devices": maids}


def _run_tap(tmp_path: Path, name: str, batch_config: dict[str, Any] | None) -> list[str]:
    tap = tmp_path / "tap_audience_rows.py"
    tap.write_text(TAP_SOURCE)
    streams = {}
    for stream, rows in _rows().items():
        path = tmp_path / f"{stream}.json"
        path.write_text(json.dumps(rows))
        streams[stream] = str(path)
    config: dict[str, Any] = {"streams": streams}
    if batch_config is not None:
        config["batch_config"] = batch_config
    config_path = tmp_path / f"tap-{name}.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, str(tap), "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if line.strip()]


def _load(tmp_path: Path, name: str, lines: list[str]) -> tuple[PinterestEmulator, dict[str, Any]]:
    workdir = tmp_path / f"work-{name}"
    workdir.mkdir()
    emulator = PinterestEmulator(page_size=2).start()
    try:
        run = TargetRunner(emulator, workdir).run(lines)
    except BaseException:
        emulator.stop()
        raise
    assert run.returncode == 0, run.stderr[-3000:]
    assert emulator.spec_violations == []
    return emulator, run.state


def _memberships(emulator: PinterestEmulator) -> dict[str, set[str]]:
    return {c["name"]: emulator.members(AD_ACCOUNT, c["id"]) for c in emulator.lists(AD_ACCOUNT)}


def _counts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keep = (
        "segment_name",
        "list_type",
        "records_added",
        "records_removed",
        "records_invalid",
        "invalid_by_reason",
    )
    return {
        stream: {k: entry.get(k) for k in keep}
        for stream, entry in state["pinterest_audiences"].items()
    }


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_batch_messages_load_like_records(tmp_path: Path, compression: str) -> None:
    record_lines = _run_tap(tmp_path, "records", None)
    assert not any(json.loads(line)["type"] == "BATCH" for line in record_lines)

    batch_dir = tmp_path / "batches"
    batch_dir.mkdir()
    batch_lines = _run_tap(
        tmp_path,
        "batches",
        {
            "encoding": {"format": "jsonl", "compression": compression},
            "storage": {"root": batch_dir.as_uri(), "prefix": "audience-"},
            "batch_size": 10,  # several files per stream
        },
    )
    types = [json.loads(line)["type"] for line in batch_lines]
    assert "RECORD" not in types
    batches = [json.loads(line) for line in batch_lines if json.loads(line)["type"] == "BATCH"]
    # 41 + 12 rows in files of at most 10 rows: 5 + 2 files, gzip-compressed or not.
    files = [f for b in batches for f in b["manifest"]]
    assert len(files) == 7, batches
    for b in batches:
        assert b["encoding"] == {"format": "jsonl", "compression": compression}
    # The SDK's JSONL batcher (0.54) gzips every file, even when the tap's batch_config (and
    # so the BATCH message) says "compression": "none".
    first = Path(files[0].removeprefix("file://"))
    with gzip.open(first, "rt") as f:
        assert "segment_name" in json.loads(f.readline())

    rec_emulator, rec_state = _load(tmp_path, "records", record_lines)
    bat_emulator, bat_state = _load(tmp_path, "batches", batch_lines)
    try:
        expected_shoppers = {sha(f"user{n}@example.com") for n in range(37) if n != 5} | {
            sha("late@example.com")
        }
        rec_members = _memberships(rec_emulator)
        assert rec_members["Batch Shoppers"] == expected_shoppers
        assert len(rec_members["Batch Devices"]) == 12

        assert _memberships(bat_emulator) == rec_members
        assert _counts(bat_state) == _counts(rec_state)
        assert _counts(bat_state)["shoppers"]["records_invalid"] == 1
        assert {a["name"] for a in bat_emulator.audiences(AD_ACCOUNT)} == {
            a["name"] for a in rec_emulator.audiences(AD_ACCOUNT)
        }
        for entry in bat_state["pinterest_audiences"].values():
            assert entry["customer_list_id"] and entry["audience_id"]
    finally:
        rec_emulator.stop()
        bat_emulator.stop()


def test_plain_jsonl_batch_files_and_a_bad_line(target: TargetRunner, tmp_path: Path) -> None:
    """Uncompressed JSONL files (as other Singer taps write them) load too; a bad line in a
    batch file fails the run naming the file and line, never quoting it."""
    rows = [{"segment_name": "Plain", "email": f"plain{n}@example.com"} for n in range(5)]
    files = []
    for part in (rows[:3], rows[3:]):
        path = tmp_path / f"part{len(files)}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in part))
        files.append(path.as_uri())
    batch = {
        "type": "BATCH",
        "stream": "plain",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": files,
    }
    run = target.run([schema_message("plain"), batch])
    assert run.returncode == 0, run.stderr[-3000:]
    entry = run.entry("plain")
    assert entry["records_added"] == 5
    members = target.emulator.members(AD_ACCOUNT, entry["customer_list_id"])
    assert members == {sha(r["email"]) for r in rows}

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"segment_name": "Plain", "email": "ok@example.com"}\n{"email": "secret@x.co"\n'
    )
    run = target.run([schema_message("plain"), {**batch, "manifest": [bad.as_uri()]}])
    assert run.returncode == 1
    assert "line 2 is not valid JSON" in run.stderr
    assert "secret@x.co" not in run.stderr
    assert "Traceback" not in run.stderr
