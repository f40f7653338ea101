"""The SDK's own no-op target, the benchmark's yardstick: a BatchSink that does nothing.

`python scripts/noop_target.py default --input FILE` runs it with the SDK's defaults (simple
JSON reader, record validation on); `fast` uses the SDK's msgspec reader and
`validate_records: false`, its fastest settings.
"""

from __future__ import annotations

import sys

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.sinks import BatchSink


class NoopSink(BatchSink):
    def process_batch(self, context: dict) -> None:
        return None


class NoopTarget(Target):
    name = "target-noop"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NoopSink


class FastNoopTarget(NoopTarget):
    message_reader_class = MsgSpecReader


def main() -> None:
    mode, _, path = sys.argv[1:4]
    if mode == "fast":
        target: NoopTarget = FastNoopTarget(config={"validate_records": False})
    else:
        target = NoopTarget(config={})
    with open(path) as file:
        target.listen(file)


if __name__ == "__main__":
    main()
