"""A decoder whose mask and rotary tables are computed once and shared by every layer, cut so that
each stage computes them again: only the hidden state crosses a cut, and the outputs are the whole
model's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from edgeswarm.dev.llm import tiny_llm
from edgeswarm.graph.partition import Graph, balanced_cuts, split
from edgeswarm.graph.recompute import recomputable
from tests.helpers import run_chained, run_whole

POSITIONS = ("attention_mask", "position_ids")


def feeds(past: int = 3, new: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    cache = {
        f"past_key_values.{layer}.{kind}": rng.standard_normal((1, 2, past, 16)).astype(np.float32)
        for layer in range(4)
        for kind in ("key", "value")
    }
    return {
        "input_ids": np.array([[5, 7]][:1], np.int64)[:, :new],
        "attention_mask": np.ones((1, past + new), np.int64),
        "position_ids": np.arange(past, past + new, dtype=np.int64)[None],
        **cache,
    }


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_shared_position_tensors_are_computed_again_in_each_stage_not_carried(stages: int) -> None:
    model = tiny_llm(layers=4, shared_positions=True)
    plain, again = (
        split(model, balanced_cuts(model, stages)),
        split(model, balanced_cuts(model, stages), recompute=POSITIONS),
    )
    hidden = {t for part in plain[:-1] for t in part.outputs if t not in {o.name for o in model.graph.output}}
    # Without recomputing, the mask bias and rotary tables cross the cuts beside the hidden state.
    assert len(hidden) > stages - 1
    for part in again[:-1]:
        crossing = [t for t in part.outputs if not t.startswith("present.")]
        assert len(crossing) == 1, crossing  # the hidden state alone
    got = run_chained(model, balanced_cuts(model, stages), feeds(), POSITIONS)
    want = run_whole(model, feeds())
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def test_only_small_tensors_of_the_free_inputs_are_recomputed() -> None:
    model = tiny_llm(layers=2, shared_positions=True)
    g = Graph(model)
    hidden_made = g.nodes[-1].output[0]  # the logits: made from the whole model
    assert recomputable(g, hidden_made, frozenset(POSITIONS)) is None
    mask = next(out for node in g.nodes for out in node.output if recomputable(g, out, frozenset(POSITIONS)))
    assert recomputable(g, mask, frozenset()) is None  # not without its free inputs
