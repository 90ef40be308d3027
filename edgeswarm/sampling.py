"""The next token from one row of logits: one pure function that workers and the reference loop share.

A draw depends only on (logits, sampling, step): the generator is seeded with `[seed, step]` and read
once, so replaying step N after a failover gives the same token as the first time.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from edgeswarm.errors import InvalidRequest

MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Sampling:
    """temperature 0 is greedy; top_k 0 keeps every token; top_p 1 turns the nucleus off;
    seed None draws from the operating system's entropy (not reproducible)."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        t, k, p, seed = self.temperature, self.top_k, self.top_p, self.seed
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise InvalidRequest(f"temperature must be a finite number >= 0, got {t!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InvalidRequest(f"top_k must be an integer >= 0 (0 keeps every token), got {k!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise InvalidRequest(f"top_p must be in (0, 1] (1 keeps every token), got {p!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
        ):
            raise InvalidRequest(f"seed must be None or an integer in 0..2**63-1, got {seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


GREEDY = Sampling()


def sample(logits: np.ndarray, sampling: Sampling, step: int) -> int:
    """The token drawn from `logits` (1-D, the last position's row) for generated token number `step`."""
    if logits.ndim != 1 or logits.size == 0:
        raise ValueError(f"logits must be one non-empty row (vocab,), got shape {logits.shape}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if sampling.greedy:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / sampling.temperature
    order = np.argsort(-scaled, kind="stable")  # descending; equal logits keep the lower index first
    if 0 < sampling.top_k < order.size:
        order = order[: sampling.top_k]
    probs = _softmax(scaled[order])
    if sampling.top_p < 1:
        cumulative = np.cumsum(probs)
        keep = min(int(np.searchsorted(cumulative, sampling.top_p)) + 1, order.size)
        order, probs = order[:keep], _softmax(scaled[order[:keep]])
    rng = np.random.default_rng() if sampling.seed is None else np.random.default_rng([sampling.seed, step])
    cumulative = np.cumsum(probs)
    drawn = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(order[min(drawn, order.size - 1)])


def _softmax(sorted_desc: np.ndarray) -> np.ndarray:
    weights = np.exp(sorted_desc - sorted_desc[0])
    return np.asarray(weights / weights.sum())


def stopped(token_ids: Sequence[int], stop_ids: Collection[int]) -> bool:
    """Whether the last token generated ends the generation."""
    return bool(token_ids) and token_ids[-1] in stop_ids
