"""Cutting a decoder so that what follows from the session's position never crosses a cut. Pure.

A decoder's `attention_mask` and `position_ids` are rebuilt by every stage from the session's
length. A tensor computed from them alone (and from small weights), such as an expanded causal mask
or rotary cos/sin tables that several layers share, would otherwise cross each cut after the layer
that made it, and it grows with the context. Here its few nodes are copied into every later stage
that reads it, so only the hidden state crosses.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import onnx

from edgeswarm.graph.partition import Graph, PartitionError, StagePart, stage_part

# Most nodes, and most weight bytes, a tensor's copied subgraph may have: beyond, it is real work,
# and it crosses the cut as it is.
MAX_NODES = 64
MAX_WEIGHT_BYTES = 64 * 1024


def recomputable(g: Graph, name: str, free: frozenset[str]) -> list[int] | None:
    """The positions of the nodes that make `name` from the `free` graph inputs and small weights
    only, in order; None when it needs anything else (another input, a big weight, many nodes)."""
    needed: set[int] = set()
    stack = [name]
    while stack:
        tensor = stack.pop()
        if tensor in free or tensor in g.initializers:
            continue
        made = g.made_at.get(tensor)
        if made is None or made < 0:
            return None  # a graph input not in `free`
        if made in needed:
            continue
        if g.parameter_bytes[made] > MAX_WEIGHT_BYTES or set(g.nodes[made].output) & set(g.outputs):
            return None
        needed.add(made)
        if len(needed) > MAX_NODES:
            return None
        stack.extend(g.reads[made])
    return sorted(needed)


def split_recomputing(model: onnx.ModelProto, cuts: Sequence[int], free: frozenset[str]) -> list[StagePart]:
    """partition.split, with the tensors that follow from `free` computed again in each later stage."""
    g = Graph(model)
    n = len(g.nodes)
    bounds = [0, *cuts, n]
    if any(not a < b for a, b in itertools.pairwise(bounds)):
        raise PartitionError(f"cuts {list(cuts)} must be increasing node positions in (0, {n})")
    stages: list[list[int]] = []
    for first, end in itertools.pairwise(bounds):
        chosen = set(range(first, end))
        for name in _inputs(g, chosen):
            copied = recomputable(g, name, free) if g.made_at.get(name, -1) >= 0 else None
            chosen.update(copied or ())
        stages.append(sorted(chosen))
    inputs = [_inputs(g, set(positions)) for positions in stages]
    parts = []
    for index, positions in enumerate(stages):
        made_here = {out for i in positions for out in g.nodes[i].output if out}
        made_so_far = {out for s in stages[: index + 1] for i in s for out in g.nodes[i].output if out}
        needed_later = set().union(*inputs[index + 1 :])
        available = made_so_far | set(g.inputs)
        carry = sorted(
            {t for t in needed_later if t in available} | {t for t in g.outputs if t in made_so_far},
            key=g.rank.__getitem__,
        )
        outputs = [t for t in carry if t in made_here and (t in needed_later or t in g.outputs)]
        if index == len(stages) - 1:
            carry = [t for t in g.outputs]
            outputs = [t for t in g.outputs if t in made_here]
        if not outputs:
            raise PartitionError(f"stage {index} produces nothing later stages read")
        parts.append(stage_part(model, g, index, positions, inputs[index], outputs, carry))
    return parts


def _inputs(g: Graph, positions: set[int]) -> list[str]:
    """What the nodes at `positions` read and do not make themselves (weights aside), in rank order."""
    made = {out for i in positions for out in g.nodes[i].output if out}
    read = {name for i in positions for name in g.reads[i]}
    return sorted((t for t in read if t not in made and t not in g.initializers), key=g.rank.__getitem__)
