"""From a checked model to the stages of a plan and their shards: cut as asked, or as the planner
placed it. Pure and CPU-bound: run it in a thread."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgeswarm.coordinator.planning.planner import Layout
from edgeswarm.coordinator.planning.segments import Segments
from edgeswarm.errors import InvalidRequest
from edgeswarm.graph.decoder import POSITION_INPUTS, check_pairs_in_stages, is_decoder, state_pairs
from edgeswarm.graph.loading import parse_model
from edgeswarm.graph.partition import PartitionError, StagePart, balanced_cuts, split
from edgeswarm.graph.signature import signature_of
from edgeswarm.plans import Signature, StageSpec, StateSpec


@dataclass(frozen=True)
class Split:
    signature: Signature
    parts: tuple[StagePart, ...]
    digests: tuple[str, ...]  # sha256 of each part's bytes


def parse_and_split(name: str, data: bytes, stages: int, declared: Mapping[str, str] | None = None) -> Split:
    """Checks the ONNX file and cuts it into `stages` parts; a decoder's so that what follows from a
    session's position is computed again in each stage rather than crossing (graph.recompute)."""
    model = parse_model(name, data)
    signature = signature_of(model)
    try:
        cuts = balanced_cuts(model, stages) if stages > 1 else []
        parts = tuple(split(model, cuts, position_inputs(model, declared)))
    except PartitionError as exc:
        raise InvalidRequest(f"model {name!r} cannot be split into {stages} stages: {exc}") from exc
    return Split(signature, parts, tuple(hashlib.sha256(p.model).hexdigest() for p in parts))


def layout_specs(
    model: onnx.ModelProto, segments: Segments, layout: Layout
) -> tuple[list[StageSpec], dict[str, bytes]]:
    """The stages of a planned layout and their shards by sha256: the one-stage pipelines as one group
    of replicas, each longer pipeline a group of its own, cut where the planner put its stages."""
    specs: list[StageSpec] = []
    shards: dict[str, bytes] = {}

    def add(parts: Sequence[StagePart], workers: Sequence[tuple[str, ...]], group: int) -> None:
        for part, held_by in zip(parts, workers, strict=True):
            sha = hashlib.sha256(part.model).hexdigest()
            shards[sha] = part.model
            specs.append(
                StageSpec(
                    part.index, sha, len(part.model), part.inputs, part.outputs, part.carry, held_by, group
                )
            )

    singles = tuple(p.stages[0].worker for p in layout.pipelines if len(p.stages) == 1)
    groups = 0
    if singles:
        add(split(model, []), [singles], 0)
        groups = 1
    recompute = position_inputs(model)
    for pipeline in (p for p in layout.pipelines if len(p.stages) > 1):
        cuts = segments.cuts_of(pipeline.stages)
        add(split(model, cuts, recompute), [(s.worker,) for s in pipeline.stages], groups)
        groups += 1
    return specs, shards


def position_inputs(model: onnx.ModelProto, declared: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The inputs each stage of a decoder builds from a session's length, where the model is one."""
    if not (declared or is_decoder(model)):
        return ()
    names = {i.name for i in model.graph.input}
    return tuple(name for name in POSITION_INPUTS if name in names)


def decoder_states(
    path: Path, specs: Sequence[StageSpec], declared: Mapping[str, str]
) -> tuple[StateSpec, ...]:
    """The model's state pairs (by their names, and `declared`), each checked to lie inside one stage."""
    structure = onnx.load(str(path), load_external_data=False)
    pairs = state_pairs(structure, declared)
    check_pairs_in_stages([(spec.inputs, spec.outputs) for spec in specs], pairs)
    return tuple(StateSpec(p.output, p.input, p.axis) for p in pairs)
