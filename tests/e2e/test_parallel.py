"""The parallel reader gives exactly what the sequential one gives: members, counts, errors."""

from __future__ import annotations

import json

import pytest

from target_pinterest_audiences.emulator import PinterestEmulator
from tests.conftest import (
    AD_ACCOUNT,
    TargetRunner,
    audience_messages,
    emails,
    record_message,
    schema_message,
    writes,
)

ROWS = 12_000  # about 1.4 MB: more than one block of the parallel reader


def big_input() -> list[dict | str]:
    messages: list[dict | str] = list(audience_messages("a", "List A", emails(ROWS)))
    messages.append({"type": "STATE", "value": {"bookmarks": {"a": 1}}})
    messages += audience_messages("b", "List B", emails(ROWS // 2, start=ROWS))
    for n in range(0, ROWS, 7):
        messages.append(record_message("a", segment_name="List A", email=f"user{n}@example.com",
                                       action="remove"))  # fmt: skip
    messages.append(record_message("a", segment_name="List A", email="bad@@x.com"))
    messages.append(record_message("b", segment_name="List B", email=None, idfa="nope"))
    messages.append(schema_message("c"))
    messages += audience_messages("c", "List C", emails(50, start=90_000))[1:]
    messages.append({"type": "STATE", "value": {"bookmarks": {"a": 2, "b": 1}}})
    return messages


def outcome(run, emulator: PinterestEmulator) -> dict:  # type: ignore[no-untyped-def]
    assert run.returncode == 0, run.stderr[-3000:]
    lists = {item["name"]: emulator.members(AD_ACCOUNT, item["id"]) for item in
             emulator.lists(AD_ACCOUNT)}  # fmt: skip
    state = run.state
    for entry in state["pinterest_audiences"].values():
        entry.pop("synced_at")
        entry.pop("customer_list_id")
        entry.pop("audience_id")
    return {"lists": lists, "state": state}


def test_parallel_and_sequential_readers_agree(
    target: TargetRunner, emulator: PinterestEmulator
) -> None:
    messages = big_input()
    parallel_run = target.run(messages, _parallel_workers=2, records_per_request=5000)
    parallel = outcome(parallel_run, emulator)
    emulator.reset()
    sequential = outcome(target.run(messages, _parallel_workers=0, records_per_request=5000),
                         emulator)  # fmt: skip
    assert parallel == sequential
    assert parallel["state"]["bookmarks"] == {"a": 2, "b": 1}
    assert len(parallel["lists"]["List A"]) == ROWS - len(range(0, ROWS, 7))
    entry = parallel["state"]["pinterest_audiences"]["a"]
    assert entry["records_invalid"] == 1 and entry["invalid_by_reason"] == {"invalid_email": 1}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_late_second_list_is_refused_with_its_row_either_way(
    target: TargetRunner, emulator: PinterestEmulator, workers: int
) -> None:
    messages = audience_messages("a", "List A", emails(ROWS))
    messages.append(record_message("a", segment_name="Other", email="late@example.com"))
    run = target.run(messages, _parallel_workers=workers)
    assert run.returncode != 0 and writes(emulator) == []
    assert f"row {ROWS + 1}, input line {ROWS + 2}" in run.stderr
    assert "'List A' and 'Other'" in run.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_fail_mode_names_the_first_invalid_row_either_way(
    target: TargetRunner, emulator: PinterestEmulator, workers: int
) -> None:
    messages = audience_messages("a", "List A", emails(ROWS))
    messages.insert(9000, record_message("a", segment_name="List A", email="nope"))
    messages.append(record_message("a", segment_name="List A", action="zap", email="z@x.com"))
    run = target.run(messages, _parallel_workers=workers, on_invalid_record="fail")
    assert run.returncode != 0 and writes(emulator) == []
    assert "row 9000 of stream 'a' (input line 9001) is invalid: invalid_email" in run.stderr
    assert "2 invalid row(s)" in run.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_a_record_before_its_schema_late_in_the_input_is_named(
    target: TargetRunner, emulator: PinterestEmulator, workers: int
) -> None:
    messages: list[dict | str] = list(audience_messages("a", "List A", emails(ROWS)))
    messages.append(record_message("ghost", segment_name="G", email="g@example.com"))
    run = target.run(messages, _parallel_workers=workers)
    assert run.returncode != 0
    assert f"input line {ROWS + 2}: a RECORD for stream 'ghost' arrived before its SCHEMA" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr
    assert json.dumps("g@example.com") not in run.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_a_line_broken_after_a_wrong_typed_record_is_a_corrupted_input(
    target: TargetRunner, emulator: PinterestEmulator, workers: int
) -> None:
    # The fast decoder stops at the list (a validation error); the line is also truncated.
    broken = '{"type": "RECORD", "stream": "a", "record": [1, 2'
    messages: list[dict | str] = list(audience_messages("a", "List A", emails(ROWS)))
    messages.insert(5, broken)
    messages.insert(6, '{"type": "RECORD", "stream": "a", "record": ["secret@example.com"]}')
    run = target.run(messages, _parallel_workers=workers)
    assert run.returncode == 1 and run.states == []
    assert "input line 6 is not valid JSON" in run.stderr
    assert [r for r in emulator.requests if r.method in ("POST", "PATCH")] == []
    assert "secret@example.com" not in run.stderr and "Traceback" not in run.stderr
