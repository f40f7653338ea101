"""target-pinterest-audiences: settings, wiring, and when STATE is written."""

from __future__ import annotations

import json
import logging
import sys
import typing as t

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.target_base import Target

from target_pinterest_audiences import parallel
from target_pinterest_audiences.progress import ReadProgress
from target_pinterest_audiences.reader import AudienceReader, InputError
from target_pinterest_audiences.sink import AudienceSink, StreamPlan, StreamRefused

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.sinks import Sink

STATE_KEY = "pinterest_audiences"
SECRET_SETTINGS = ("access_token", "refresh_token", "client_secret")


class TargetError(Exception):
    """A failure the user can act on; printed as one message, without a traceback."""


class RecordBeforeSchema(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived for a stream whose SCHEMA has not been seen."""


class TargetPinterestAudiences(Target):
    """Loads audience streams into Pinterest customer lists and CUSTOMER_LIST audiences."""

    name = "target-pinterest-audiences"
    default_sink_class = AudienceSink
    message_reader_class = AudienceReader
    # BATCH messages (JSONL, gzip or not; parquet with pyarrow) load like RECORD messages.
    capabilities: t.ClassVar = [*Target.capabilities, PluginCapabilities.BATCH]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "ad_account_id",
            th.StringType(pattern=r"^\d+$"),
            required=True,
            title="Ad account ID",
            description="Pinterest ad account (digits) that owns the customer lists and audiences.",
        ),
        th.Property(
            "access_token",
            th.StringType,
            secret=True,
            title="Access token",
            description=(
                "OAuth bearer token with the ads:read and ads:write scopes. Optional when "
                "refresh_token, client_id and client_secret are given."
            ),
        ),
        th.Property(
            "refresh_token",
            th.StringType,
            secret=True,
            title="Refresh token",
            description=(
                "OAuth refresh token, exchanged at {api_url}/oauth/token for access tokens. "
                "Pinterest rotates it on every refresh; the newest one is kept in "
                ".target-pinterest-audiences/ (owner-only file) and used on the next run."
            ),
        ),
        th.Property(
            "client_id",
            th.StringType,
            title="Client ID",
            description="Pinterest app id: the HTTP Basic user of the token call.",
        ),
        th.Property(
            "client_secret",
            th.StringType,
            secret=True,
            title="Client secret",
            description="Pinterest app secret: the HTTP Basic password of the token call.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            default="https://api.pinterest.com/v5",
            title="API URL",
            description="Base URL of the Pinterest API v5, for proxies and local emulators.",
        ),
        th.Property(
            "sync_mode",
            th.StringType(allowed_values=["explicit", "mirror"]),
            default="explicit",
            title="Sync mode",
            description=(
                "explicit: each row's action says add or remove. mirror: each stream is the "
                "complete membership of its list; members new since the last run are added, "
                "members gone are removed."
            ),
        ),
        th.Property(
            "on_invalid_record",
            th.StringType(allowed_values=["skip", "fail"]),
            default="skip",
            title="On invalid record",
            description=(
                "skip: drop an invalid row, count it by reason and go on. fail: a stream with "
                "any invalid row sends nothing and the run exits non-zero."
            ),
        ),
        th.Property(
            "records_per_request",
            th.IntegerType(minimum=1, maximum=10_000),
            default=10_000,
            title="Records per request",
            description="Most identifiers in one Pinterest customer list create/update call.",
        ),
        th.Property(
            "max_requests_per_minute",
            th.IntegerType(minimum=1),
            default=400,
            title="Max write requests per minute",
            description="Client-side cap on write calls (Pinterest's ads_write quota is 400/min).",
        ),
        th.Property(
            "list_type",
            th.StringType(allowed_values=["EMAIL", "IDFA", "MAID"]),
            title="List type",
            description=(
                "Pinterest list type for new lists. When absent it is inferred: all email -> "
                "EMAIL, all MAID -> MAID, all IDFA -> IDFA, a mix -> EMAIL."
            ),
        ),
        th.Property(
            "dry_run",
            th.BooleanType,
            default=False,
            title="Dry run",
            description="Validate, hash and plan; print what would be sent; make no write call.",
        ),
        th.Property(
            "max_removal_fraction",
            th.NumberType(minimum=0, maximum=1),
            default=0.5,
            title="Max removal fraction",
            description=(
                "mirror mode refuses a run that would remove more than this fraction of a list's "
                "known members (1.0 turns the guard off)."
            ),
        ),
        th.Property(
            "ledger_url",
            th.StringType,
            title="Ledger URL",
            description=(
                "SQLAlchemy URL where mirror mode keeps the membership it last confirmed "
                "(SQLite or PostgreSQL). Default: a SQLite file in .target-pinterest-audiences/ "
                "under the working directory."
            ),
        ),
    ).to_dict()

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # The SDK's messages quote the offending value; for a secret that is the secret.
        wrong = [
            key
            for key in SECRET_SETTINGS
            if self._config.get(key) is not None and not isinstance(self._config[key], str)
        ]
        if wrong and raise_errors:
            raise ConfigValidationError(
                "Config validation failed",
                errors=[f"{key} must be a string (its value is not shown)" for key in wrong],
            )
        return super()._validate_config(raise_errors=raise_errors)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        # Never more than one drain at a time: syncing happens once, at the end of input.
        self.max_parallelism = 1
        self.malformed_lines = 0
        self._state_allowed = False
        # Stream maps and flattening need the SDK's per-record path; without them a record
        # goes straight to its sink (no copy, no schema validation, no per-record metrics call).
        self._fast_path = not self.config.get("stream_maps") and not self.config.get(
            "flattening_enabled"
        )
        self._progress = ReadProgress(
            self.logger, float(self.config.get("_progress_interval_seconds", 30))
        )
        reader = t.cast(AudienceReader, self.message_reader)
        reader.on_malformed = self._on_malformed_line
        reader.on_tick = self._on_tick
        reader.mirror = self.config.get("sync_mode", "explicit") == "mirror"
        if self._fast_path:
            reader.parallel_workers = parallel.worker_count(self.config.get("_parallel_workers"))

    # ---- input ---------------------------------------------------------------------------

    @property
    def _reader(self) -> AudienceReader:
        return t.cast(AudienceReader, self.message_reader)

    def _audience_sinks(self) -> list[AudienceSink]:
        return [t.cast(AudienceSink, sink) for sink in self._sinks_active.values()]

    def _on_tick(self) -> None:
        for sink in self._audience_sinks():
            sink.after_rows()
        if self._progress.due():
            for sink in self._audience_sinks():
                sink.flush_metrics()
            self._progress.report(self._audience_sinks())

    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> Sink:
        # One sink per stream for the whole run: a repeated or changed SCHEMA must not start a
        # new sink (the SDK would), or the members collected so far would be dropped.
        existing = self._sinks_active.get(stream_name)
        if existing is not None:
            return existing
        return super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )

    def _process_schema_message(self, message_dict: dict) -> None:
        super()._process_schema_message(message_dict)
        if self._fast_path:
            # In place: the reader's loop holds this very dict.
            for name, sink in self._sinks_active.items():
                self._reader.ingesters[name] = t.cast(AudienceSink, sink).ingest_record
                self._reader.absorbers[name] = t.cast(AudienceSink, sink).absorb

    def _on_malformed_line(self, line_number: int, why: str) -> None:
        if self.config.get("on_invalid_record", "skip") == "fail":
            raise InputError(
                f"input line {line_number} {why}; nothing was sent (on_invalid_record=fail). "
                "Fix the tap's output, or set on_invalid_record=skip to count and skip such lines."
            )
        self.malformed_lines += 1
        self.logger.warning("Skipping input line %d: it %s.", line_number, why)

    def _process_record_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        if not isinstance(stream, str) or "record" not in message_dict:
            raise InputError(
                f"input line {self._reader.line_number}: a RECORD message needs 'stream' and "
                "'record'"
            )
        if self._fast_path:
            sink = self._sinks_active.get(stream)
            if sink is None:
                raise self._record_before_schema(stream)
            t.cast(AudienceSink, sink).ingest(message_dict["record"], self._reader.line_number)
            return
        if stream not in self.mapper.stream_maps:
            raise self._record_before_schema(stream)
        super()._process_record_message(message_dict)

    def _record_before_schema(self, stream: str) -> InputError:
        return RecordBeforeSchema(
            f"input line {self._reader.line_number}: a RECORD for stream '{stream}' arrived "
            "before its SCHEMA message. The tap must send SCHEMA first; check the tap or the "
            "stream name."
        )

    # ---- end of input: sync, then STATE --------------------------------------------------

    def process_endofpipe(self) -> None:
        from target_pinterest_audiences.runner import run_streams

        sinks = self._audience_sinks()
        failures: list[str] = []
        plans: list[StreamPlan] = []
        try:
            for sink in sinks:
                if sink.rows == 0:
                    # A SCHEMA without rows (say, an incremental tap with nothing new).
                    if self.config.get("sync_mode", "explicit") == "mirror":
                        failures.append(
                            f"Stream '{sink.stream_name}' was refused and nothing was sent for "
                            "it: it has no rows, and in mirror mode an empty stream would empty "
                            "its customer list. Check the upstream query; to empty a list on "
                            "purpose, send its members with sync_mode=explicit and action=remove."
                        )
                    else:
                        self.logger.info(
                            "Stream '%s' has no rows: nothing to send.", sink.stream_name
                        )
                    continue
                try:
                    # The parallel reader's workers, if any, deduplicate the members too.
                    plans.append(sink.plan(self._reader.pool))
                except StreamRefused as refused:
                    failures.append(str(refused))
        finally:
            self._reader.close_pool()
        if self.malformed_lines:
            self.logger.warning("Skipped %d malformed input line(s).", self.malformed_lines)
        try:
            entries, run_failures = run_streams(self, plans)
        finally:
            for sink in sinks:
                sink.clean_up()
        failures.extend(run_failures)
        if failures:
            raise TargetError("\n".join(failures))
        if self.config.get("dry_run"):
            self.logger.info("Dry run: nothing was written to Pinterest; no STATE emitted.")
            return
        state = dict(self._latest_state or {})
        previous = state.get(STATE_KEY)
        audiences = dict(previous) if isinstance(previous, dict) else {}
        audiences.update(entries)
        state[STATE_KEY] = audiences
        self._state_allowed = True
        self._write_state_message(state)

    def _write_state_message(self, state: dict) -> None:
        # The SDK writes the tap's STATE whenever it drains; ours may only be written once
        # Pinterest accepted everything it covers, with our entries in it.
        if not self._state_allowed:
            return
        sys.stdout.write(json.dumps(state, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        # The SDK drains and exits 0 on SIGTERM, which would claim a sync that did not happen.
        self.logger.error(
            "Stopped by signal %d before the sync finished; no STATE was written. Run again: "
            "the target finds its lists by name and repeats only what is needed.",
            signum,
        )
        sys.exit(128 + signum)

    # ---- CLI -----------------------------------------------------------------------------

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        try:
            super().invoke(*args, **kwargs)
        except (TargetError, InputError, StreamRefused) as error:
            _fail(cls.logger, str(error))
        except Exception as error:
            from target_pinterest_audiences.pinterest import PinterestError

            if isinstance(error, PinterestError):
                _fail(cls.logger, str(error))
            raise


def _fail(logger: logging.Logger, message: str) -> t.NoReturn:
    for line in message.splitlines():
        logger.error(line)
    sys.stderr.flush()
    sys.exit(1)


if __name__ == "__main__":
    TargetPinterestAudiences.cli()
