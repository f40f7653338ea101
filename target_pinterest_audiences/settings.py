"""The target's settings, read once from the config: each default written once, here.

Everything else takes a `Settings` (or the `StreamSettings` of one stream) and never reads the
raw config. Test-only tuning knobs (hidden `_...` config keys, not in the settings schema) live
in `Tuning`, each with the reason it exists.
"""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from target_pinterest_audiences.workdir import WORK_DIR_NAME

DEFAULT_API_URL = "https://api.pinterest.com/v5"
DEFAULT_RECORDS_PER_REQUEST = 10_000
DEFAULT_MAX_REQUESTS_PER_MINUTE = 400  # Pinterest's ads_write quota (Standard access)
DEFAULT_MAX_READS_PER_MINUTE = 1000  # Pinterest's ads_read quota (Standard access)
DEFAULT_MAX_REMOVAL_FRACTION = 0.5
SECRET_SETTINGS = ("access_token", "refresh_token", "client_secret")
# What `streams` may set for one stream, each overriding the setting of the same name.
STREAM_SETTINGS = (
    "ad_account_id",
    "audience_name",
    "audience_description",
    "list_type",
    "sync_mode",
    "max_removal_fraction",
    "lookalikes",
)
# A lookalike (ACTALIKE) audience: the keys of one `lookalikes` entry, and its bounds.
LOOKALIKE_KEYS = ("country", "percentage", "name")
LOOKALIKE_PERCENTAGES = range(1, 11)


class SyncMode(enum.StrEnum):
    EXPLICIT = "explicit"  # each row's action says add or remove
    MIRROR = "mirror"  # each stream is the complete membership of its list


class OnInvalidRecord(enum.StrEnum):
    SKIP = "skip"
    FAIL = "fail"


class IdfaCase(enum.StrEnum):
    """How IDFAs are cased before hashing (Pinterest documents lowercase MAIDs only)."""

    LOWER = "lower"
    UPPER = "upper"


@dataclass(frozen=True)
class Tuning:
    """Test-only knobs: real runs never set them; tests shrink waits so faults take milliseconds."""

    # Exponential backoff base between retries (tests: retries in ms, not seconds).
    retry_base_seconds: float = 1.0
    # Pacing window of the per-minute quotas; half a second over 60 because Pinterest counts
    # calls when they arrive, and arrivals jitter with the network.
    rate_period_seconds: float = 60.5
    # Read timeout of one API call (tests: a hung emulator fails fast).
    read_timeout_seconds: float = 120.0
    # Calls in flight: enough to spend a minute's quota in seconds at 250 ms of latency, so the
    # quota, not latency, bounds throughput (scripts/bench.py measures it). Also the run's call
    # threads, shared by all its streams.
    calls_in_flight: int = 16
    # Streams synced side by side: enough to keep the calls in flight busy with streams of one
    # or two calls each (scripts/bench_many.py measures it); threads do not grow with streams.
    streams_in_parallel: int = 8
    # After a create whose answer was lost finds nothing, keep looking this long before
    # creating again: a slow create may still land.
    lost_create_settle_seconds: float = 30.0
    # Interval of the progress lines while reading and sending.
    progress_interval_seconds: float = 30.0
    # How long mirror mode waits for another run's lock on the same list.
    ledger_lock_wait_seconds: float = 30.0
    # Member records held in memory before the partitions spill to disk: per stream, and all
    # streams of the run together (the streams holding the most spill first).
    member_buffer_bytes: int = 16 << 20
    run_buffer_bytes: int = 64 << 20
    # Reader worker processes; None: one per core, at most two (0: read sequentially).
    parallel_workers: int | None = None

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> Tuning:
        values: dict[str, t.Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            raw = config.get(f"_{name}")
            if raw is None:
                continue
            kind = int if spec.type in ("int", "int | None") else float
            values[name] = kind(raw)
        return cls(**values)


@dataclass(frozen=True)
class Lookalike:
    """One configured lookalike audience of a stream: Pinterest users like the stream's
    audience, in one country, sized as a share (1 to 10 percent) of that country's users."""

    country: str
    percentage: int
    name: str | None = None  # None: made from the audience's name, the country and the share

    @classmethod
    def from_config(cls, entry: t.Mapping[str, t.Any]) -> Lookalike:
        name = entry.get("name")
        return cls(str(entry["country"]), int(entry["percentage"]), str(name) if name else None)


@dataclass(frozen=True)
class StreamSettings:
    """The settings that apply to one stream."""

    sync_mode: SyncMode
    list_type: str | None  # None: inferred from the identifiers
    max_removal_fraction: float
    ad_account_id: str
    ad_account_setting: str  # the setting that names it: for messages
    audience_name: str | None = None  # None: the list's name
    audience_description: str | None = None
    lookalikes: tuple[Lookalike, ...] | None = None  # None: the stream sets no lookalikes

    @property
    def mirror(self) -> bool:
        return self.sync_mode == SyncMode.MIRROR


@dataclass(frozen=True)
class Settings:
    """Every setting of a run, parsed and defaulted."""

    ad_account_id: str
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    sync_mode: SyncMode = SyncMode.EXPLICIT
    on_invalid_record: OnInvalidRecord = OnInvalidRecord.SKIP
    records_per_request: int = DEFAULT_RECORDS_PER_REQUEST
    max_requests_per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    max_reads_per_minute: int = DEFAULT_MAX_READS_PER_MINUTE
    list_type: str | None = None
    dry_run: bool = False
    max_removal_fraction: float = DEFAULT_MAX_REMOVAL_FRACTION
    ledger_url: str | None = None
    idfa_case: IdfaCase = IdfaCase.LOWER
    # stream name -> its per-stream settings (the `streams` setting), checked by `config_errors`
    streams: t.Mapping[str, t.Mapping[str, t.Any]] = field(default_factory=dict)
    # Stream maps and flattening need the SDK's per-record path (the fast path steps aside).
    sdk_record_path: bool = False
    work_dir: Path = Path(WORK_DIR_NAME)
    tuning: Tuning = Tuning()

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any], *, cwd: Path) -> Settings:
        """Settings from a config the SDK has already checked against the settings schema."""

        def get(key: str, default: t.Any) -> t.Any:
            value = config.get(key)
            return default if value is None else value

        return cls(
            # An integer (digits unquoted in YAML) is the same account.
            ad_account_id=str(config.get("ad_account_id") or ""),
            access_token=config.get("access_token") or None,
            refresh_token=config.get("refresh_token") or None,
            client_id=str(config["client_id"]) if config.get("client_id") else None,
            client_secret=config.get("client_secret") or None,
            api_url=str(get("api_url", DEFAULT_API_URL)).rstrip("/"),
            sync_mode=SyncMode(get("sync_mode", SyncMode.EXPLICIT)),
            on_invalid_record=OnInvalidRecord(get("on_invalid_record", OnInvalidRecord.SKIP)),
            records_per_request=int(get("records_per_request", DEFAULT_RECORDS_PER_REQUEST)),
            max_requests_per_minute=int(
                get("max_requests_per_minute", DEFAULT_MAX_REQUESTS_PER_MINUTE)
            ),
            max_reads_per_minute=int(get("max_reads_per_minute", DEFAULT_MAX_READS_PER_MINUTE)),
            list_type=config.get("list_type") or None,
            dry_run=bool(get("dry_run", False)),
            max_removal_fraction=float(get("max_removal_fraction", DEFAULT_MAX_REMOVAL_FRACTION)),
            ledger_url=config.get("ledger_url") or None,
            idfa_case=IdfaCase(get("idfa_case", IdfaCase.LOWER)),
            streams={name: dict(values) for name, values in (config.get("streams") or {}).items()},
            sdk_record_path=bool(config.get("stream_maps") or config.get("flattening_enabled")),
            work_dir=cwd / WORK_DIR_NAME,
            tuning=Tuning.from_config(config),
        )

    @property
    def fail_on_invalid(self) -> bool:
        return self.on_invalid_record == OnInvalidRecord.FAIL

    @property
    def can_refresh(self) -> bool:
        return bool(self.refresh_token and self.client_id and self.client_secret)

    @property
    def may_mirror(self) -> bool:
        """Whether any stream of the run can be in mirror mode (it then needs the ledger)."""
        return self.sync_mode == SyncMode.MIRROR or any(
            values.get("sync_mode") == SyncMode.MIRROR for values in self.streams.values()
        )

    @property
    def idfa_upper(self) -> bool:
        return self.idfa_case == IdfaCase.UPPER

    def for_stream(self, stream: str) -> StreamSettings:
        """The global settings, with what `streams` says for this stream over them."""
        own = self.streams.get(stream, {})
        fraction = own.get("max_removal_fraction")
        account = own.get("ad_account_id")
        return StreamSettings(
            sync_mode=SyncMode(own.get("sync_mode") or self.sync_mode),
            list_type=own.get("list_type") or self.list_type,
            max_removal_fraction=self.max_removal_fraction if fraction is None else float(fraction),
            ad_account_id=self.ad_account_id if account is None else str(account),
            ad_account_setting="ad_account_id"
            if account is None
            else f"streams.{stream}.ad_account_id",
            audience_name=own.get("audience_name") or None,
            audience_description=own.get("audience_description"),
            lookalikes=None
            if own.get("lookalikes") is None
            else tuple(Lookalike.from_config(entry) for entry in own["lookalikes"]),
        )
