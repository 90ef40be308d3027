"""A model as the planner sees it: a chain of segments cut at natural positions, with their
parameter bytes, FLOPs and the bytes crossing each cut. Pure."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from edgeswarm.coordinator.planning.planner import ModelProfile, Stage
from edgeswarm.graph.partition import Graph, StagePart, balanced_cuts, natural_positions, split

MAX_SEGMENTS = 16
# Bytes assumed for a boundary whose shape cannot be inferred.
UNKNOWN_BOUNDARY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Segments:
    positions: tuple[int, ...]  # node positions of the cuts between segments
    nodes: int
    parts: tuple[StagePart, ...]  # the segments as stand-alone models (for timing them)
    flops: tuple[int, ...]
    profile: ModelProfile

    def cuts_of(self, stages: Sequence[Stage]) -> list[int]:
        """Node positions of the cuts between `stages` (consecutive segment ranges)."""
        return [self.start(stage.first) for stage in stages[1:]]

    def start(self, segment: int) -> int:
        return 0 if segment == 0 else self.positions[segment - 1]

    def end(self, segment: int) -> int:
        """The last node of `segment`."""
        return (self.positions[segment] if segment < len(self.positions) else self.nodes) - 1


def segments_of(
    model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], most: int = MAX_SEGMENTS
) -> Segments:
    """Cuts `model` at its natural positions (at most `most` segments, balanced by FLOPs when there
    are more), sizes resolved from the shapes of `inputs`."""
    shapes = {name: value.shape for name, value in inputs.items()}
    g = Graph(model, shapes)
    n = len(g.nodes)
    natural = natural_positions(g)
    if len(natural) + 1 > most:
        positions = balanced_cuts(model, most)
    elif natural:
        positions = natural
    else:
        positions = balanced_cuts(model, min(most, n))
    parts = tuple(split(model, positions))
    bounds = [0, *positions, n]
    flops = tuple(sum(g.flops[a:b]) for a, b in itertools.pairwise(bounds))
    profile = ModelProfile(
        segment_bytes=tuple(p.parameter_bytes for p in parts),
        boundary_bytes=tuple(_bytes(g.live_bytes(p)) for p in positions),
        input_bytes=sum(int(v.nbytes) for v in inputs.values()),
        output_bytes=_bytes(sum(g.tensor_bytes(o) for o in g.outputs)),
    )
    return Segments(tuple(positions), n, parts, flops, profile)


def _bytes(value: float) -> int:
    return UNKNOWN_BOUNDARY_BYTES if math.isinf(value) else int(value)
