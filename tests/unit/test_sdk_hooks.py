"""What the target relies on in the Singer SDK, held so an SDK release that changes it fails here.

target.py uses two private hooks (`_validate_config` and the reader's message handlers
`_process_record_message` / `_process_state_message`) and public ones (`get_sink`,
`process_endofpipe`, `process_lines`, `Sink.clean_up`, `Sink.process_batch_files`); it
replaces the SDK's signal handlers with Python's own `signal.signal`. Each test below runs the
SDK's code path and checks the behaviour the target builds on, in-process.
"""

from __future__ import annotations

import io
import json
import signal
import typing as t

import pytest
from singer_sdk.exceptions import ConfigValidationError

from target_pinterest_audiences.emulator import PinterestEmulator
from target_pinterest_audiences.sink import AudienceSink
from target_pinterest_audiences.target import TargetPinterestAudiences
from tests.conftest import AD_ACCOUNT, TOKEN


@pytest.fixture
def config(emulator: PinterestEmulator) -> dict[str, t.Any]:
    # Reading starts with one read call that proves the token and the ad account.
    return {"ad_account_id": AD_ACCOUNT, "access_token": TOKEN, "api_url": emulator.url}


SCHEMA = {"type": "SCHEMA", "stream": "s", "schema": {"properties": {}}, "key_properties": []}


def lines(*messages: dict[str, t.Any]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(m) + "\n" for m in messages).encode())


def test_the_sdk_validates_the_config_through_the_overridden_hook(config: dict) -> None:
    # If PluginBase.__init__ stopped calling _validate_config, a secret of the wrong type would
    # be quoted by the SDK's own message.
    with pytest.raises(ConfigValidationError) as caught:
        TargetPinterestAudiences(config={**config, "client_secret": 987654321})
    assert caught.value.errors == ["client_secret must be a string (its value is not shown)"]
    assert "987654321" not in str(caught.value.errors)


def test_state_and_odd_records_reach_the_overridden_message_handlers(config: dict) -> None:
    target = TargetPinterestAudiences(config=dict(config))
    state = {"bookmarks": {"s": {"id": 7}}}
    counts = target.process_lines(
        lines(
            SCHEMA,
            {"type": "STATE", "value": state},
            # not an object: the fast reader steps aside, the SDK's RECORD handler is ours
            {"type": "RECORD", "stream": "s", "record": [1, 2]},
        )
    )
    assert counts["STATE"] == 1 and counts["SCHEMA"] == 1
    assert target._tap_state == state
    stream = target.inputs.get("s")
    assert stream is not None and stream.rows == 1
    assert dict(stream.collector.invalid) == {"record_not_an_object": 1}
    # The SDK's own state never fills, so its drains never write the tap's state alone.
    assert getattr(target, "_latest_state", None) is None
    target.inputs.close()


def test_a_repeated_schema_keeps_one_sink_and_one_collector_per_stream(config: dict) -> None:
    target = TargetPinterestAudiences(config=dict(config))
    changed = {**SCHEMA, "schema": {"properties": {"email": {"type": "string"}}}}
    target.process_lines(
        lines(SCHEMA, {"type": "RECORD", "stream": "s", "record": {"segment_name": "L"}}, changed)
    )
    sink = target.get_sink("s")
    assert isinstance(sink, AudienceSink)
    assert sink.input is target.inputs.get("s") and sink.input.rows == 1
    target.inputs.close()


def test_the_sdk_signal_handlers_are_replaced(config: dict) -> None:
    target = TargetPinterestAudiences(config=dict(config))
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)
        assert getattr(handler, "__func__", None) is TargetPinterestAudiences._stop_on_signal
    assert target is not None


def test_the_reader_handlers_the_target_overrides_are_the_sdks_abstract_ones() -> None:
    # process_lines hands these names to the reader as the RECORD and STATE callbacks.
    from singer_sdk.plugin_base import BaseSingerReader

    for name in ("_process_record_message", "_process_state_message"):
        assert name in BaseSingerReader.__abstractmethods__
        assert name in TargetPinterestAudiences.__dict__
