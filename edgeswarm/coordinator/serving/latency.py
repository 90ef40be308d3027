"""How slow each worker has lately been for a model, so that routing can prefer the fast ones. Pure.

A peak-sensitive moving average of request latency, as in Finagle's and Linkerd's "peak EWMA" load
balancers: a sample above the estimate replaces it (a slowed link shows at once), a sample below
moves it part of the way, and an estimate with no new sample decays towards zero with time, so a
worker that was slow and is left alone is tried again later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# How far one faster sample moves the estimate towards itself.
SMOOTHING = 0.25


@dataclass(frozen=True)
class _Estimate:
    seconds: float
    stamp: float


class PeakEwma:
    """Latency estimates by (model, worker); `decay_s` is the time constant of the decay to zero."""

    def __init__(self, decay_s: float = 2.0) -> None:
        if decay_s <= 0:
            raise ValueError(f"decay_s must be positive, not {decay_s}")
        self.decay_s = decay_s
        self._estimates: dict[tuple[str, str], _Estimate] = {}

    def observe(self, model: str, worker: str, seconds: float, now: float) -> None:
        current = self.estimate(model, worker, now)
        if seconds < current:
            seconds = current + SMOOTHING * (seconds - current)
        self._estimates[(model, worker)] = _Estimate(seconds, now)

    def estimate(self, model: str, worker: str, now: float) -> float:
        """Seconds a request of `model` has lately taken on `worker`; 0.0 when nothing is known."""
        known = self._estimates.get((model, worker))
        if known is None:
            return 0.0
        return known.seconds * math.exp(-max(now - known.stamp, 0.0) / self.decay_s)

    def forget(self, worker: str) -> None:
        """Drops what is known of `worker` (lost: when it comes back, it starts afresh)."""
        for key in [k for k in self._estimates if k[1] == worker]:
            del self._estimates[key]


def slowness(estimates: dict[str, float]) -> dict[str, int]:
    """How many times slower than the fastest each worker is, rounded down and at least 1; a worker
    with no estimate (0.0) counts as fast. Workers within a factor of 2 of each other are equals."""
    known = [s for s in estimates.values() if s > 0]
    if not known:
        return dict.fromkeys(estimates, 1)
    fastest = min(known)
    return {w: max(1, int(s / fastest)) for w, s in estimates.items()}
