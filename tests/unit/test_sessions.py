"""A worker's session memory: the budget, who is pushed out for whom, idle sessions dropped."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswarm.errors import NotFound, ResourceExhausted
from edgeswarm.worker.sessions import SessionStore


def kv(kib: int) -> dict[str, np.ndarray]:
    return {"past": np.zeros(kib * 256, np.float32)}  # kib KiB


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_growing_session_pushes_out_the_least_recently_used_other() -> None:
    clock = Clock()
    store = SessionStore(10 * 1024, idle_s=100, protect_s=1, clock=clock)
    store.put("a", "s0", kv(4), 1)
    store.put("b", "s0", kv(4), 1)
    store.get("a", "s0")  # a used last
    store.put("b", "s0", kv(8), 2)  # b grows: a must go
    assert store.get("a", "s0") is None
    held = store.get("b", "s0")
    assert held is not None and held.position == 2 and store.nbytes == 8 * 1024


def test_a_new_session_pushes_out_only_idle_ones_and_is_refused_clearly_otherwise() -> None:
    clock = Clock()
    store = SessionStore(10 * 1024, idle_s=100, protect_s=1, clock=clock)
    store.put("a", "s0", kv(6), 1)
    with pytest.raises(ResourceExhausted, match="no room for a new session: 1 session"):
        store.put("b", "s0", kv(6), 1)
    clock.now = 2.0  # a idle for longer than protect_s
    store.put("b", "s0", kv(6), 1)
    assert store.get("a", "s0") is None and store.get("b", "s0") is not None


def test_a_session_larger_than_the_budget_is_refused_with_the_numbers() -> None:
    store = SessionStore(1024)
    with pytest.raises(ResourceExhausted, match=r"needs 4096 bytes .* session memory of 1024 bytes"):
        store.put("a", "s0", kv(4), 1)
    assert store.nbytes == 0


def test_idle_sessions_are_dropped_and_ending_one_drops_every_stage_of_it() -> None:
    clock = Clock()
    store = SessionStore(100 * 1024, idle_s=10, clock=clock)
    store.put("a", "s0", kv(1), 1)
    store.put("a", "s1", kv(1), 1)
    store.put("b", "s0", kv(1), 1)
    assert len(store) == 2 and store.nbytes == 3 * 1024
    assert store.end("a") and not store.end("a")
    assert store.nbytes == 1024
    clock.now = 11.0
    assert store.sweep() == ["b"] and store.nbytes == 0


def test_a_step_still_under_way_when_its_session_ended_keeps_no_state() -> None:
    store = SessionStore(100 * 1024)
    store.put("a", "s0", kv(1), 1)
    store.end("a")
    with pytest.raises(NotFound, match="session a has ended"):
        store.put("a", "s1", kv(1), 2)
    assert store.nbytes == 0 and len(store) == 0
