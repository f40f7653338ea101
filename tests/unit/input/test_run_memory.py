"""Member records held in memory across all streams of a run stay under one bound (issue 17:
hundreds of streams, each under its own bound, would otherwise hold hundreds of times it)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from target_pinterest_audiences.input.streams import InputStreams
from target_pinterest_audiences.settings import Settings, Tuning

LOG = logging.getLogger("test_run_memory")


def held(inputs: InputStreams) -> int:
    return sum(sum(map(len, stream.members.parts)) for stream in inputs)


def test_all_streams_together_stay_under_the_run_bound_and_lose_nobody(tmp_path: Path) -> None:
    per_stream, run = 1 << 20, 64 << 10  # 1 MB each, 64 KB for the whole run
    settings = Settings(
        ad_account_id="1",
        work_dir=tmp_path / ".target-pinterest-audiences",
        tuning=Tuning(member_buffer_bytes=per_stream, run_buffer_bytes=run, parallel_workers=0),
    )
    inputs = InputStreams(settings, LOG)
    streams = [inputs.open(f"s{n}") for n in range(40)]
    most = 0
    for row in range(1, 301):
        for n, stream in enumerate(streams):
            stream.ingest({"segment_name": f"S {n}", "email": f"u{row}-{n}@example.com"}, row)
        if row % 25 == 0:
            inputs.tick()
            most = max(most, held(inputs))
    assert most <= run  # without the run's bound: 40 streams x 300 rows, nothing spilled
    plans, refusals = inputs.finish()
    assert refusals == []
    for n, plan in enumerate(sorted(plans, key=lambda p: int(p.stream[1:]))):
        expected = {
            hashlib.sha256(f"u{row}-{n}@example.com".encode()).digest() for row in range(1, 301)
        }
        got = {blob[i : i + 32] for blob in plan.adds.blobs(1000) for i in range(0, len(blob), 32)}
        assert got == expected, plan.stream
    inputs.close()
