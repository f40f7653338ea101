"""target-pinterest-audiences: the settings schema and the Singer SDK's hooks.

The target is wiring: rows go to the input side (`input/`) as they arrive; at the end of
input the streams' checked plans go to the sync layer (`loading/`), and the STATE line is
written once Pinterest accepted everything it covers.

Private SDK hooks used, each commented where it is used and held by a test that fails if an
SDK release changes it (tests/unit/test_sdk_hooks.py): `_validate_config`, and the message
handlers `_process_record_message` / `_process_state_message` (the SDK's abstract reader
hooks; every target implements them through `Target`); and `_get_about_info` for plain
`--about` (tests/e2e/test_loader.py's --about test).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import typing as t
from pathlib import Path

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.target_base import Target

from target_pinterest_audiences.config_check import config_errors
from target_pinterest_audiences.errors import InputError, TargetError
from target_pinterest_audiences.input.leftover import discard_unread_input
from target_pinterest_audiences.input.reader import AudienceReader
from target_pinterest_audiences.input.streams import InputStreams
from target_pinterest_audiences.settings import (
    DEFAULT_API_URL,
    DEFAULT_MAX_READS_PER_MINUTE,
    DEFAULT_MAX_REMOVAL_FRACTION,
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    DEFAULT_RECORDS_PER_REQUEST,
    IdfaCase,
    OnInvalidRecord,
    Settings,
    SyncMode,
)
from target_pinterest_audiences.sink import AudienceSink

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.sinks import Sink

    from target_pinterest_audiences.loading import Session

STATE_KEY = "pinterest_audiences"
LIST_TYPES = ("EMAIL", "IDFA", "MAID")
# The SDK's built-in settings that mean nothing for this target (see append_builtin_config).
IGNORED_SDK_SETTINGS = (
    "add_record_metadata",
    "load_method",
    "batch_size_rows",
    "batch_config",
    "validate_records",
)


class RecordBeforeSchema(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived for a stream whose SCHEMA has not been seen."""


class TargetPinterestAudiences(Target):
    """Loads audience streams into Pinterest customer lists and CUSTOMER_LIST audiences."""

    name = "target-pinterest-audiences"
    default_sink_class = AudienceSink
    message_reader_class = AudienceReader
    # BATCH messages (JSONL, gzip or not; parquet with pyarrow) load like RECORD messages.
    # validate-records is left out: rows are checked by the target's own rules instead.
    capabilities: t.ClassVar = [
        *(c for c in Target.capabilities if c != TargetCapabilities.VALIDATE_RECORDS),
        PluginCapabilities.BATCH,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "ad_account_id",
            # Digits; a number too, since digits unquoted in YAML arrive as one.
            th.CustomType({"type": ["string", "integer"], "pattern": r"^\d+$"}),
            required=True,
            title="Ad account ID",
            description=(
                "Pinterest ad account that owns the customer lists and audiences: digits only, "
                "as in the Ads Manager URL."
            ),
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
            th.CustomType({"type": ["string", "integer"]}),
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
            default=DEFAULT_API_URL,
            title="API URL",
            description="Base URL of the Pinterest API v5, for proxies and local emulators.",
        ),
        th.Property(
            "sync_mode",
            th.StringType(allowed_values=["explicit", "mirror"]),
            default=SyncMode.EXPLICIT.value,
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
            default=OnInvalidRecord.SKIP.value,
            title="On invalid record",
            description=(
                "skip: drop an invalid row, count it by reason and go on. fail: a stream with "
                "any invalid row sends nothing and the run exits non-zero."
            ),
        ),
        th.Property(
            "records_per_request",
            th.IntegerType(minimum=1, maximum=10_000),
            default=DEFAULT_RECORDS_PER_REQUEST,
            title="Records per request",
            description="Most identifiers in one Pinterest customer list create/update call.",
        ),
        th.Property(
            "max_requests_per_minute",
            th.IntegerType(minimum=1),
            default=DEFAULT_MAX_REQUESTS_PER_MINUTE,
            title="Max write requests per minute",
            description=(
                "Client-side cap on write calls per minute, shared by every stream and ad account "
                "of a run (Pinterest's ads_write quota is 400/min per app and user)."
            ),
        ),
        th.Property(
            "max_reads_per_minute",
            th.IntegerType(minimum=1),
            default=DEFAULT_MAX_READS_PER_MINUTE,
            title="Max read requests per minute",
            description=(
                "Client-side cap on read calls per minute, shared by every stream and ad account "
                "of a run (Pinterest's ads_read quota is 1000/min per app and user)."
            ),
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
            default=DEFAULT_MAX_REMOVAL_FRACTION,
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
                "SQLAlchemy URL where the members Pinterest accepted are kept, in both sync "
                "modes (mirror mode diffs against them), and every run's history (the report "
                "command reads it): SQLite or PostgreSQL. Default: a SQLite file in "
                ".target-pinterest-audiences/ under the working directory."
            ),
        ),
        th.Property(
            "idfa_case",
            th.StringType(allowed_values=["lower", "upper"]),
            default=IdfaCase.LOWER.value,
            title="IDFA case",
            description=(
                "How IDFAs are cased before hashing: lower (the same rule as MAIDs, which "
                "Pinterest documents lowercase) or upper (as Apple hands them out)."
            ),
        ),
        th.Property(
            "streams",
            th.ObjectType(
                additional_properties=th.ObjectType(
                    th.Property("ad_account_id", th.CustomType({"type": ["string", "integer"]})),
                    th.Property("audience_name", th.StringType),
                    th.Property("audience_description", th.StringType),
                    th.Property("list_type", th.StringType(allowed_values=list(LIST_TYPES))),
                    th.Property("sync_mode", th.StringType(allowed_values=["explicit", "mirror"])),
                    th.Property("max_removal_fraction", th.NumberType(minimum=0, maximum=1)),
                    th.Property(
                        "lookalikes",
                        th.ArrayType(
                            th.ObjectType(
                                th.Property("country", th.StringType, required=True),
                                th.Property(
                                    "percentage",
                                    th.IntegerType(minimum=1, maximum=10),
                                    required=True,
                                ),
                                th.Property("name", th.StringType),
                            )
                        ),
                    ),
                )
            ),
            title="Per-stream settings",
            description=(
                "Settings of single streams, keyed by stream name: audience_name and "
                "audience_description for its audience; lookalikes, lookalike (ACTALIKE) "
                "audiences seeded from it, each {country, percentage 1-10, name}; and "
                "ad_account_id, list_type, sync_mode and max_removal_fraction overriding the "
                "setting of the same name. Example: "
                '{"holiday_shoppers": {"audience_name": "Holiday shoppers", '
                '"sync_mode": "mirror", "max_removal_fraction": 0.2, '
                '"lookalikes": [{"country": "US", "percentage": 5}, '
                '{"country": "CA", "percentage": 1, "name": "Holiday lookalike CA"}]}}'
            ),
        ),
    ).to_dict()

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, less those that mean nothing here.

        Public SDK hook (its docstring invites overriding it). Left out: `add_record_metadata`
        (no table to add columns to), `load_method` (lists are changed member by member, never
        overwritten), `batch_size_rows` (records_per_request sizes the calls), `batch_config`
        (for writing BATCH files, which a target never does), `validate_records` (rows are
        checked by the target's own rules, which never quote a value). Stream maps and
        flattening stay: they work.
        """
        super().append_builtin_config(config_jsonschema)
        for name in IGNORED_SDK_SETTINGS:
            config_jsonschema["properties"].pop(name, None)

    # Private SDK hook: PluginBase.__init__ validates the config through it. The SDK words each
    # problem as a JSON-schema error and quotes the value (for a secret, the secret): the
    # target's own settings are checked first, in words (config_check.py).
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = config_errors(self.config)
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors)
        return errors or super()._validate_config(raise_errors=raise_errors)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = Settings.from_config(self.config, cwd=Path.cwd())
        self.inputs = InputStreams(self.settings, self.logger, report_rows=self._count_rows)
        t.cast(AudienceReader, self.message_reader).route_to(
            self.inputs, before_reading=self._start_session, on_failure=self._release
        )
        self._session: Session | None = None
        self._audience_sinks: dict[str, AudienceSink] = {}
        self._tap_state: dict[str, t.Any] | None = None
        # The SDK drains and exits 0 on SIGTERM and SIGINT, which would claim a sync that did
        # not happen: stop without STATE instead.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop_on_signal)

    # ---- input -----------------------------------------------------------------------------

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
        existing = self._audience_sinks.get(stream_name)
        if existing is not None:
            return existing
        sink = super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )
        self._audience_sinks[stream_name] = t.cast(AudienceSink, sink)
        if self._removed_by_stream_maps(stream_name):
            self.inputs.leave_out(stream_name)  # a source split by stream maps: not a list
        return sink

    def _removed_by_stream_maps(self, stream_name: str) -> bool:
        maps = self.mapper.stream_maps.get(stream_name, []) if self.settings.sdk_record_path else []
        return any(
            isinstance(stream_map, RemoveRecordTransform) and stream_map.stream_alias == stream_name
            for stream_map in maps
        )

    # Private SDK hook (an abstract message handler of the SDK's reader): the fast reader sends
    # the common RECORD lines straight to the stream's collector; the rest arrive here.
    def _process_record_message(self, message_dict: dict) -> None:
        line = t.cast(AudienceReader, self.message_reader).line_number
        stream = message_dict.get("stream")
        if not isinstance(stream, str) or "record" not in message_dict:
            raise InputError(f"input line {line}: a RECORD message needs 'stream' and 'record'")
        if self.inputs.fast_path:
            target = self.inputs.get(stream)
            if target is None:
                raise self._record_before_schema(stream, line)
            target.ingest(message_dict["record"], line)
            return
        if stream not in self.mapper.stream_maps:
            raise self._record_before_schema(stream, line)
        super()._process_record_message(message_dict)

    # Private SDK hook (an abstract message handler): keep the tap's latest state for our own
    # STATE line. The SDK's handler would make its drains write the tap's state alone.
    def _process_state_message(self, message_dict: dict) -> None:
        # Private SDK helper: the SDK's own wording for a message that lacks a key.
        self._assert_line_requires(message_dict, requires={"value"})
        self._tap_state = message_dict["value"]

    @staticmethod
    def _record_before_schema(stream: str, line: int) -> InputError:
        return RecordBeforeSchema(
            f"input line {line}: a RECORD for stream '{stream}' arrived before its SCHEMA "
            "message. The tap must send SCHEMA first; check the tap or the stream name."
        )

    def _count_rows(self, stream: str, rows: int) -> None:
        """The SDK's record_count metric, for rows that skipped the SDK's per-record path."""
        sink = self._audience_sinks.get(stream)
        if sink is not None:
            sink.record_counter_metric.increment(rows)

    # ---- end of input: sync, then STATE ----------------------------------------------------

    def _start_session(self) -> None:
        """Before reading any input: fail early on credentials, ad account, api_url, ledger."""
        from target_pinterest_audiences.loading import start_session

        self._session = start_session(self.settings, self.logger)

    def process_endofpipe(self) -> None:
        from target_pinterest_audiences.loading import run_streams

        try:
            if self._session is not None:
                # The accounts are read while the members are deduplicated: threads start only
                # now, since the reader's worker processes are forked from a single thread.
                self._session.start_reading_accounts()
            plans, refusals = self.inputs.finish()
            if self._session is None:  # input that never went through the reader
                self._start_session()
            session = t.cast("Session", self._session)
            for refusal in refusals:
                session.history.add(refusal, failure=refusal.message, refused=True)
            outcome = run_streams(session, plans)
        finally:
            for sink in self._audience_sinks.values():
                sink.clean_up()  # emits the SDK's record_count metric
            self._release()
        failures = [refusal.message for refusal in refusals] + outcome.failures
        if failures:
            raise TargetError("\n".join(failures))
        if self.settings.dry_run:
            self.logger.info("Dry run: nothing was written to Pinterest; no STATE emitted.")
            return
        state = dict(self._tap_state or {})
        previous = state.get(STATE_KEY)
        audiences = dict(previous) if isinstance(previous, dict) else {}
        audiences.update(outcome.entries)
        state[STATE_KEY] = audiences
        # Singer targets write the state value itself, once Pinterest accepted all it covers.
        sys.stdout.write(json.dumps(state, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def _release(self) -> None:
        """Spilled member files, worker processes, the Pinterest client and the ledger: at the
        end of input, and when reading stopped on an error (nothing of them may outlive it)."""
        self.inputs.close()
        if self._session is not None:
            self._session.close()
            self._session = None

    def _stop_on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.logger.error(
            "Stopped by signal %d before the sync finished; no STATE was written. Run again: "
            "the target finds its lists by name and repeats only what is needed.",
            signum,
        )
        sys.exit(128 + signum)

    # ---- CLI -------------------------------------------------------------------------------

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Plain `--about` with what each setting means; the other formats are the SDK's."""
        if (output_format or "text") != "text":
            super().print_about(output_format)
            return
        from target_pinterest_audiences.about import DescribedText

        # Private SDK helper: the information every format of the SDK's --about renders.
        print(DescribedText().format_about(cls._get_about_info()))

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        # A failure the user can act on is logged, then what the tap still sends is read and
        # dropped (input/leftover.py) so that the tap finishes instead of writing into a
        # closed pipe, and the message is what a user of `meltano run` reads last.
        reads_stdin = kwargs.get("file_input") is None
        try:
            super().invoke(*args, **kwargs)
        except TargetError as error:
            _fail(cls.logger, str(error), discard_input=reads_stdin)
        except ConfigValidationError as error:
            # The SDK's own handler (SingerCommand.invoke) would log the same lines, but only
            # after the unread input was dealt with: logged here first.
            _fail(
                cls.logger,
                "\n".join([*error.errors, "Config validation failed"]),
                discard_input=reads_stdin,
            )
        except Exception as error:
            from target_pinterest_audiences.ledger import LedgerError
            from target_pinterest_audiences.pinterest import PinterestError

            if isinstance(error, PinterestError | LedgerError):
                _fail(cls.logger, str(error), discard_input=reads_stdin)
            raise


def _fail(logger: logging.Logger, message: str, *, discard_input: bool) -> t.NoReturn:
    for line in message.splitlines():
        logger.error(line)
    sys.stderr.flush()
    if discard_input:
        discard_unread_input()
    sys.exit(1)


if __name__ == "__main__":
    TargetPinterestAudiences.cli()
