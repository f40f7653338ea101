"""What a run records in its history (the table lives in the ledger: `ledger/history.py`).

`record` turns one stream's outcome into a `RunRecord` (pure); `recorder.RunHistory` is one
run's history: opened off the main thread, read for a stream's last list, written per stream.
"""

from __future__ import annotations

from target_pinterest_audiences.history.record import call_counts, clean_message, run_record
from target_pinterest_audiences.history.recorder import RunHistory, utc_now

__all__ = ["RunHistory", "call_counts", "clean_message", "run_record", "utc_now"]
