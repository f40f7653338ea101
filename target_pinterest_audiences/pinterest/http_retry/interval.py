"""Interval calculators: how long to wait before the next attempt."""

from __future__ import annotations

from .jitter import FullJitter, Jitter


class RetryIntervalCalculator:
    def calculate_sleep_duration(self, current_attempt: int) -> float:
        """Seconds to wait before retry number ``current_attempt + 1`` (0-based)."""
        raise NotImplementedError


class BackoffRetryIntervalCalculator(RetryIntervalCalculator):
    """Exponential backoff ``base * factor**attempt`` capped at ``max_interval``, then jitter."""

    def __init__(
        self,
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        max_interval: float = 60.0,
        jitter: Jitter | None = None,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_factor = backoff_factor
        self.max_interval = max_interval
        self.jitter = jitter if jitter is not None else FullJitter()

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        # cap the exponent so huge attempt numbers cannot overflow
        exponent = min(max(current_attempt, 0), 64)
        base = min(self.max_interval, self.backoff_base * self.backoff_factor**exponent)
        return max(0.0, min(self.max_interval, self.jitter.recalculate(base)))
