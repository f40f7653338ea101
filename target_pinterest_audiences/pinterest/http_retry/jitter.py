"""Jitter applied to computed backoff intervals (seedable for tests)."""

from __future__ import annotations

import random


class Jitter:
    """Turns a computed interval into the interval actually waited."""

    def recalculate(self, duration: float) -> float:
        raise NotImplementedError


class NoJitter(Jitter):
    def recalculate(self, duration: float) -> float:
        return duration


class FullJitter(Jitter):
    """AWS "full jitter": a uniform draw in ``[0, duration]``."""

    def __init__(self, seed: int | None = None, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random(seed)

    def recalculate(self, duration: float) -> float:
        return self._rng.uniform(0.0, duration)
