"""Run the checked plans of all streams: build the client (and ledger), sync or dry-run each."""

from __future__ import annotations

import sys
import typing as t
from contextlib import ExitStack
from pathlib import Path

from target_pinterest_audiences.pinterest import (
    PinterestClient,
    PinterestError,
    TokenManager,
)
from target_pinterest_audiences.pinterest.http_retry import RetryPolicy, default_retry_handlers
from target_pinterest_audiences.sink import StreamPlan, StreamRefused, format_reasons
from target_pinterest_audiences.sync import ResolvedList, StreamSync, SyncOptions

if t.TYPE_CHECKING:
    from target_pinterest_audiences.target import TargetPinterestAudiences

WORK_DIR_NAME = ".target-pinterest-audiences"


def build_client(config: t.Mapping[str, t.Any], work_dir: Path) -> PinterestClient:
    has_refresh = all(config.get(key) for key in ("refresh_token", "client_id", "client_secret"))
    if not config.get("access_token") and not has_refresh:
        from target_pinterest_audiences.target import TargetError

        raise TargetError(
            "No Pinterest credentials: set access_token, or refresh_token together with "
            "client_id and client_secret."
        )
    api_url = str(config.get("api_url") or "https://api.pinterest.com/v5").rstrip("/")
    tokens = TokenManager(
        api_url,
        access_token=config.get("access_token"),
        refresh_token=config.get("refresh_token"),
        client_id=config.get("client_id"),
        client_secret=config.get("client_secret"),
        token_dir=work_dir,
    )
    # Hidden, test-only knobs (not in the settings schema; real runs never set them):
    # `_retry_base_seconds` shrinks the exponential backoff base (default 1 s),
    # `_read_timeout_seconds` shrinks the read timeout (default 120 s).
    retry = RetryPolicy(
        handlers=default_retry_handlers(
            backoff_base=float(config.get("_retry_base_seconds") or 1.0)
        )
    )
    # `_rate_period_seconds`: the pacing window (default 60.5 s: "per minute", with margin).
    period = config.get("_rate_period_seconds")
    client = PinterestClient(
        api_url,
        str(config["ad_account_id"]),
        tokens,
        max_writes_per_minute=int(config.get("max_requests_per_minute") or 400),
        rate_period=float(period) if period else 60.5,
        read_timeout=float(config.get("_read_timeout_seconds") or 120),
        retry=retry,
    )
    return client


def sync_options(config: t.Mapping[str, t.Any]) -> SyncOptions:
    return SyncOptions(
        ad_account_id=str(config["ad_account_id"]),
        records_per_request=int(config.get("records_per_request") or 10_000),
        # Enough calls in flight to spend a minute's quota in seconds at 250 ms of latency:
        # the quota, not the latency, then bounds throughput (scripts/bench.py measures it).
        calls_in_flight=int(config.get("_calls_in_flight") or 16),
        dry_run=bool(config.get("dry_run")),
        mirror=config.get("sync_mode", "explicit") == "mirror",
        max_removal_fraction=float(config.get("max_removal_fraction", 0.5)),
        # test-only: how long a lost create's lookup keeps looking (default 30 s)
        lost_create_settle=float(config.get("_lost_create_settle_seconds", 30)),
        progress_interval=float(config.get("_progress_interval_seconds", 30)),
        # test-only: how long mirror mode waits for another run's lock on a list (default 30 s)
        lock_wait_seconds=float(config.get("_ledger_lock_wait_seconds", 30)),
    )


def run_streams(
    target: TargetPinterestAudiences, plans: list[StreamPlan]
) -> tuple[dict[str, dict[str, t.Any]], list[str]]:
    """Sync every plan; return the STATE entries of the streams that succeeded and the errors."""
    entries: dict[str, dict[str, t.Any]] = {}
    failures: list[str] = []
    if not plans:
        return entries, failures
    config = target.config
    options = sync_options(config)
    logger = target.logger
    work_dir = Path.cwd() / WORK_DIR_NAME
    with ExitStack() as stack:
        client = stack.enter_context(build_client(config, work_dir))
        ledger = None
        # The mirror ledger's errors (another run holds the list, an unreachable ledger_url)
        # fail their stream with their message, like Pinterest's errors.
        stream_errors: tuple[type[Exception], ...] = (PinterestError,)
        if options.mirror:
            from target_pinterest_audiences.ledger import LedgerError, open_ledger

            stream_errors = (PinterestError, LedgerError)
            try:
                ledger = open_ledger(config.get("ledger_url"), base_dir=Path.cwd())
            except LedgerError as error:
                from target_pinterest_audiences.target import TargetError

                raise TargetError(str(error)) from None
            stack.callback(ledger.close)
        for plan in plans:
            logger.info(
                "Stream '%s': read %d row(s): %d member(s) to add, %d to remove, "
                "%d invalid row(s) skipped (%s), %d invalid identifier(s) dropped from valid rows "
                "(%s).",
                plan.stream,
                plan.rows,
                plan.adds.count,
                plan.removes.count,
                plan.records_invalid,
                format_reasons(plan.invalid_by_reason),
                sum(plan.rejected_identifiers.values()),
                format_reasons(plan.rejected_identifiers),
            )
            syncer = StreamSync(client, options, logger, ledger)
            try:
                if options.dry_run:
                    dry_run(syncer, plan)
                elif options.mirror:
                    from target_pinterest_audiences.mirror import sync_mirror

                    entries[plan.stream] = sync_mirror(syncer, plan)
                else:
                    entries[plan.stream] = syncer.sync(plan)
            except StreamRefused as refused:
                failures.append(str(refused))
            except stream_errors as error:
                failures.append(f"Stream '{plan.stream}' failed: {error}")
    return entries, failures


def dry_run(syncer: StreamSync, plan: StreamPlan) -> None:
    """Print what a real run would do for this stream; make no write call."""
    list_line: str
    resolved: ResolvedList | None = None
    try:
        resolved = syncer.find_list(plan)
        if resolved is None:
            list_line = f"would create customer list {plan.segment_name!r} ({plan.list_type})"
        else:
            list_line = f"would reuse customer list {resolved.id} ({resolved.name!r})"
    except PinterestError as error:
        target = plan.segment_id or repr(plan.segment_name)
        list_line = f"would create or reuse customer list {target} (lookup failed: {error})"
    adds, removes = plan.adds.count, plan.removes.count
    if syncer.options.mirror and syncer.ledger is not None and resolved is not None:
        mirror_plan = syncer.ledger.diff(
            syncer.options.ad_account_id, resolved.id, plan.adds.blobs(50_000)
        )
        try:
            adds, removes = mirror_plan.add_count, mirror_plan.remove_count
        finally:
            mirror_plan.close()
    elif syncer.options.mirror:
        removes = 0
    invalid = format_reasons(plan.invalid_by_reason)
    print(
        f"[dry run] stream '{plan.stream}': {list_line}; would add {adds} and remove "
        f"{removes} member(s) in calls of at most {syncer.options.records_per_request}; "
        f"{plan.rows} row(s) read, invalid rows: {invalid}. Nothing was sent.",
        file=sys.stderr,
        flush=True,
    )
