"""The input side of a run: every stream's rows and members, until each becomes a `StreamPlan`.

`InputStreams` is the one owner of what reading needs: one `StreamInput` per stream (its row
collector and member store), the reader's worker processes, and the rule for malformed lines.
The reader feeds it; the SDK sink (for stream maps and BATCH files) feeds it too; at the end of
input `finish()` checks each stream whole and hands back the plans. No Singer in here.
"""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Callable, Iterator

from target_pinterest_audiences.errors import InputError, StreamRefused
from target_pinterest_audiences.input.identifiers import infer_list_type
from target_pinterest_audiences.input.members import MemberStore
from target_pinterest_audiences.input.plan import Refusal, StreamPlan, refusal
from target_pinterest_audiences.input.rows import AudienceRecord, RowCollector
from target_pinterest_audiences.input.workers import WorkerPool, worker_count
from target_pinterest_audiences.progress import ReadProgress

if t.TYPE_CHECKING:
    from concurrent.futures import Executor

    from target_pinterest_audiences.settings import Settings, StreamSettings


class StreamInput:
    """One stream's input: its rows, collected and hashed; nothing is sent while it is read."""

    def __init__(
        self, name: str, settings: StreamSettings, *, buffer_bytes: int, idfa_upper: bool = False
    ) -> None:
        self.name = name
        self.settings = settings
        # Beyond `buffer_bytes` of member records in memory, the partitions spill to disk.
        self.members = MemberStore(flush_bytes=buffer_bytes)
        self.collector = RowCollector(parts=self.members.parts, idfa_upper=idfa_upper)
        # Rows that the SDK's per-record path counted in its record_count metric itself.
        self.sdk_counted = 0
        self._dropped = False

    @property
    def rows(self) -> int:
        return self.collector.rows

    @property
    def invalid_rows(self) -> int:
        return sum(self.collector.invalid.values())

    def ingest(self, record: object, line: int | None = None) -> None:
        """One row as a decoded JSON value. BATCH files and stream maps have no input line:
        their rows are numbered within the stream."""
        self.collector.ingest(record, self.collector.rows + 1 if line is None else line)

    def absorb(self, block: RowCollector) -> None:
        """Rows of this stream collected by a reader worker, in input order."""
        self.collector.absorb(block)

    def after_rows(self) -> int:
        """Spill members beyond the memory bound; drop them all once the stream is refused.
        Return the bytes of member records it still holds in memory."""
        if self.collector.refused:
            if not self._dropped:
                self._dropped = True
                self.members.close()  # nothing of this stream will be sent
            return 0
        return self.members.spill_if_full()

    def finish(self, pool: Executor | None, *, fail_on_invalid: bool) -> StreamPlan:
        """Check the whole stream, then deduplicate its members (on `pool` when given)."""
        collector = self.collector
        why = refusal(self.name, collector, fail_on_invalid=fail_on_invalid)
        if why is not None:
            raise StreamRefused(why)
        adds, removes = self.members.finish(pool, ordered=self.settings.mirror)
        first = collector.lists_named[0]
        return StreamPlan(
            stream=self.name,
            segment_name=first.name,
            segment_id=first.segment_id,
            list_type=self.settings.list_type or infer_list_type(collector.list_types),
            adds=adds,
            removes=removes,
            rows=collector.rows,
            invalid_by_reason=dict(collector.invalid),
            rejected_identifiers=dict(collector.rejected),
        )

    def refused(self, message: str) -> Refusal:
        """The stream, refused with `message`: what the run history keeps of it."""
        named = self.collector.lists_named
        return Refusal(
            stream=self.name,
            message=message,
            segment_name=named[0].name if named else None,
            rows=self.rows,
            invalid_by_reason=dict(self.collector.invalid),
        )

    def close(self) -> None:
        self.members.close()


class InputStreams:
    """Every stream of the run, the reader's workers, and what to do with a malformed line."""

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
        *,
        report_rows: Callable[[str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self._streams: dict[str, StreamInput] = {}
        self._left_out: set[str] = set()  # streams the stream maps remove (split into others)
        # stream name -> its collector's `ingest_record`: the reader's hot path, one dict lookup
        # per record. Empty when stream maps or flattening send records the SDK's way.
        self.ingesters: dict[str, Callable[[AudienceRecord, int], None]] = {}
        self.fast_path = not settings.sdk_record_path
        workers = worker_count(settings.tuning.parallel_workers) if self.fast_path else 0
        self.pool = WorkerPool(workers, idfa_upper=settings.idfa_upper)
        # Called with (stream, rows read since the last call): the SDK's record_count metric.
        self._report_rows = report_rows
        self._reported: dict[str, int] = {}
        self._progress = ReadProgress(logger, settings.tuning.progress_interval_seconds)

    # ---- streams ---------------------------------------------------------------------------

    def open(self, name: str) -> StreamInput:
        """The stream's input, made on its first SCHEMA: one per stream for the whole run."""
        stream = self._streams.get(name)
        if stream is None:
            stream = StreamInput(
                name,
                self.settings.for_stream(name),
                buffer_bytes=self.settings.tuning.member_buffer_bytes,
                idfa_upper=self.settings.idfa_upper,
            )
            self._streams[name] = stream
            if self.fast_path:
                self.ingesters[name] = stream.collector.ingest_record
        return stream

    def leave_out(self, name: str) -> None:
        """A stream that is no list of its own (stream maps removed it): nothing to sync."""
        self._left_out.add(name)

    def get(self, name: str) -> StreamInput | None:
        return self._streams.get(name)

    def __iter__(self) -> Iterator[StreamInput]:
        return iter(list(self._streams.values()))

    # ---- called while reading ----------------------------------------------------------------

    def tick(self) -> None:
        """Every few thousand rows: spill or drop members, and log progress when it is due.

        Each stream holds at most `member_buffer_bytes` of member records in memory, and all
        streams together at most `run_buffer_bytes`: beyond it the streams holding the most
        spill first, so a run of hundreds of large streams keeps flat memory too."""
        held = {stream.name: stream.after_rows() for stream in self}
        over = sum(held.values()) - self.settings.tuning.run_buffer_bytes
        for name in sorted(held, key=held.__getitem__, reverse=True):
            if over <= 0:
                break
            self._streams[name].members.flush()
            over -= held[name]
        if self._progress.due():
            self.report_rows()
            self._progress.report(self)

    def malformed(self, line_number: int, why: str) -> t.NoReturn:
        """A line that is not a Singer message: the input is corrupted, so nothing is sent.

        Skipping it could drop a member's row (in mirror mode: remove the member), whatever
        on_invalid_record says; reading comes before any sending, so nothing was sent yet.
        """
        raise InputError(
            f"input line {line_number} {why}: the input is corrupted (a tap that stopped "
            "mid-line, a broken pipe?), so nothing was sent for any stream. Fix what produces "
            "the input and run again (on_invalid_record applies to rows, not to broken lines)."
        )

    def report_rows(self) -> None:
        if self._report_rows is None:
            return
        for stream in self:
            ours = stream.rows - stream.sdk_counted
            new = ours - self._reported.get(stream.name, 0)
            if new > 0:
                self._report_rows(stream.name, new)
                self._reported[stream.name] = ours

    # ---- end of input ------------------------------------------------------------------------

    def finish(self) -> tuple[list[StreamPlan], list[Refusal]]:
        """Each stream checked whole: the plans of the streams to sync, and the refusals."""
        self.report_rows()
        self._warn_of_streams_never_seen()
        plans: list[StreamPlan] = []
        refusals: list[Refusal] = []
        try:
            for stream in self:
                if stream.name in self._left_out and stream.rows == 0:
                    continue
                if stream.rows == 0:
                    self._empty(stream, refusals)
                    continue
                try:
                    plans.append(
                        stream.finish(
                            self.pool.started, fail_on_invalid=self.settings.fail_on_invalid
                        )
                    )
                except StreamRefused as refused:
                    refusals.append(stream.refused(str(refused)))
        finally:
            self.pool.close()
        return plans, refusals

    def _warn_of_streams_never_seen(self) -> None:
        for name in self.settings.streams:
            if name not in self._streams:
                self.logger.warning(
                    "The streams setting names stream '%s', which never arrived in the input: "
                    "its settings did nothing. Check the name against the streams the tap sends "
                    "(Meltano's tap-postgres names them schema-table, as in public-customers).",
                    name,
                )

    def _empty(self, stream: StreamInput, refusals: list[Refusal]) -> None:
        # A SCHEMA without rows (an incremental tap with nothing new, say).
        if stream.settings.mirror:
            refusals.append(
                stream.refused(
                    f"Stream '{stream.name}' was refused and nothing was sent for it: it has no "
                    "rows, and in mirror mode an empty stream would empty its customer list. Check "
                    "the upstream query; to empty a list on purpose, send its members with "
                    "sync_mode=explicit and action=remove."
                )
            )
        else:
            self.logger.info("Stream '%s' has no rows: nothing to send.", stream.name)

    def close(self) -> None:
        self.pool.close()
        for stream in self:
            stream.close()
