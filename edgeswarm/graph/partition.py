"""Cutting any ONNX graph into an ordered chain of stages. Pure: ModelProto in, stage bytes out.

Nodes are taken in the graph's order (ONNX requires it to be topological). Cut position `p`
puts nodes [0, p) before the cut and [p, n) after it. The tensors live across a cut are the graph
inputs and node outputs made before it that a node after it reads (inside a subgraph too) or that
are graph outputs. A node with a subgraph (If, Loop, Scan) is one node, so it is never cut inside.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

from edgeswarm.graph.costs import dims_of, graph_shapes, itemsize, node_flops, tensor_nbytes

_UNKNOWN = onnx.TensorProto.UNDEFINED


class PartitionError(ValueError):
    """A cut that cannot be made; the message names the node, tensor or count at fault."""


@dataclass(frozen=True)
class StagePart:
    index: int
    model: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    # Tensors handed on after this stage: what later stages read, and graph outputs made so far.
    carry: tuple[str, ...]
    first_node: int
    last_node: int
    parameter_bytes: int


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from the scope around it."""
    defined = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    reads: set[str] = set()
    for node in graph.node:
        reads.update(n for n in _node_reads(node) if n not in defined)
        defined.update(node.output)
    reads.update(o.name for o in graph.output if o.name not in defined)
    return reads


def _node_reads(node: onnx.NodeProto) -> list[str]:
    names = [n for n in node.input if n]
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            names.extend(sorted(_subgraph_reads(attr.g)))
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for g in attr.graphs:
                names.extend(sorted(_subgraph_reads(g)))
    return names


class Graph:
    """Who makes and who reads each tensor, shapes, and each node's cost; computed once per model.

    `input_shapes` resolves the graph inputs' symbolic dimensions for the estimates (others count as 1).
    """

    def __init__(
        self, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
    ) -> None:
        graph = model.graph
        self.model = model
        self.nodes = list(graph.node)
        self.initializers = {i.name: i for i in graph.initializer}
        self.inputs = [v.name for v in graph.input if v.name not in self.initializers]
        self.outputs = [v.name for v in graph.output]
        self.reads = [_node_reads(n) for n in self.nodes]
        # Order of availability: graph inputs first, then node outputs in node order.
        self.made_at: dict[str, int] = {name: -1 for name in self.inputs}
        order = list(self.inputs)
        for i, node in enumerate(self.nodes):
            for out in node.output:
                if out:
                    self.made_at[out] = i
                    order.append(out)
        self.rank = {name: r for r, name in enumerate(order)}
        self.last_read: dict[str, int] = {}
        for i, names in enumerate(self.reads):
            for name in names:
                self.last_read[name] = i
        final = len(self.nodes)
        for name in self.outputs:
            self.last_read[name] = final
        inferred = _inferred(model, input_shapes or {})
        self.infos = _value_infos(inferred)
        shapes = graph_shapes(inferred)
        self.flops = [node_flops(node, shapes) for node in self.nodes]
        self.parameter_bytes = [
            sum(tensor_nbytes(self.initializers[n]) for n in set(reads) if n in self.initializers)
            for reads in self.reads
        ]

    def tensor_bytes(self, name: str) -> float:
        """Bytes of a tensor, symbolic dimensions at 1; a tensor of unknown shape counts as infinite."""
        info = self.infos.get(name)
        shape = dims_of(info) if info is not None else None
        if info is None or shape is None or info.type.tensor_type.elem_type == _UNKNOWN:
            return float("inf")
        return float(math.prod(shape) * itemsize(info.type.tensor_type.elem_type))

    def live_bytes(self, position: int) -> float:
        return sum(self.tensor_bytes(name) for name in self.live_after(position))

    def live_after(self, position: int) -> tuple[str, ...]:
        live = [
            name
            for name, made in self.made_at.items()
            if made < position and self.last_read.get(name, -1) >= position
        ]
        return tuple(sorted(live, key=self.rank.__getitem__))

    def costs(self) -> list[int]:
        """Each node's static share of the work: its FLOPs, or its parameter bytes if no FLOPs are known."""
        if any(self.flops):
            return [f + 1 for f in self.flops]
        return [p + 1 for p in self.parameter_bytes]


def live_after(model: onnx.ModelProto, position: int) -> tuple[str, ...]:
    """The tensors crossing the cut at `position`."""
    return Graph(model).live_after(position)


def natural_cuts(model: onnx.ModelProto) -> list[int]:
    """Positions where the bytes crossing are least on the scale of a block: between repeated blocks.

    A position is natural when no position within an eighth of the graph on either side has a
    boundary more than 5% smaller (symbolic dimensions taken as 1).
    """
    return natural_positions(Graph(model))


def natural_positions(g: Graph) -> list[int]:
    n = len(g.nodes)
    sizes = {p: g.live_bytes(p) for p in range(1, n)}
    reach = max(1, n // 8)
    natural = []
    for p, size in sizes.items():
        around = [sizes[q] for q in range(max(1, p - reach), min(n, p + reach + 1))]
        if size <= 1.05 * min(around):
            natural.append(p)
    return natural


def balanced_cuts(model: onnx.ModelProto, stages: int) -> list[int]:
    """`stages - 1` cuts splitting the estimated cost evenly, each at the smallest boundary near its target.

    Near means within a quarter of one stage's cost of the even split; ties go to the closest position.
    """
    g = Graph(model)
    n = len(g.nodes)
    if stages < 1:
        raise PartitionError(f"a model needs at least 1 stage, not {stages}")
    if stages > n:
        raise PartitionError(f"the graph has {n} nodes, too few for {stages} stages")
    if stages == 1:
        return []
    cumulative = [0, *itertools.accumulate(g.costs())]
    total = cumulative[-1]
    slack = total / stages / 4
    cuts: list[int] = []
    for j in range(1, stages):
        lowest = cuts[-1] + 1 if cuts else 1
        room = range(lowest, n - (stages - 1 - j))
        target = total * j / stages
        distance = {p: abs(cumulative[p] - target) for p in room}
        near = [p for p in room if distance[p] <= slack] or [min(room, key=distance.__getitem__)]
        cuts.append(min(near, key=lambda p: (g.live_bytes(p), distance[p], p)))
    return cuts


def _inferred(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """The model after shape inference, its inputs first given the shapes in `input_shapes`."""
    if input_shapes:
        known = {v.name for v in model.graph.input}
        unknown = sorted(set(input_shapes) - known)
        if unknown:
            raise PartitionError(f"the model has no input {unknown[0]!r}")
        resolved = onnx.ModelProto()
        resolved.CopyFrom(model)
        for value in resolved.graph.input:
            if value.name in input_shapes:
                shape = value.type.tensor_type.shape
                dims = list(input_shapes[value.name])
                if len(dims) != len(shape.dim):
                    raise PartitionError(f"input {value.name!r} has rank {len(shape.dim)}, not {len(dims)}")
                for dim, size in zip(shape.dim, dims, strict=True):
                    dim.Clear()
                    dim.dim_value = size
        model = resolved
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    if _untyped(inferred):
        inferred = _inferred_by_runtime(inferred)
    return inferred


def _untyped(inferred: onnx.ModelProto) -> list[str]:
    """Node outputs whose element type shape inference left unknown: outputs of operators the onnx
    library has no schema for, such as ONNX Runtime's contrib ops (MatMulNBits, Gelu), and what they feed."""
    infos = _value_infos(inferred)
    return [
        out
        for node in inferred.graph.node
        for out in node.output
        if out and (out not in infos or infos[out].type.tensor_type.elem_type == _UNKNOWN)
    ]


def _inferred_by_runtime(inferred: onnx.ModelProto) -> onnx.ModelProto:
    """The model typed by ONNX Runtime's symbolic shape inference, which knows its contrib ops; the
    model as it was where that inference cannot run (what stays untyped cannot cross a cut)."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:
        typed: onnx.ModelProto = SymbolicShapeInference.infer_shapes(inferred, auto_merge=True)
    except Exception:  # an operator it has no rule for, or a graph it cannot follow
        return inferred
    return typed


def _value_infos(inferred: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    graph = inferred.graph
    infos = {v.name: v for v in graph.value_info}
    infos.update({v.name: v for v in graph.input})
    infos.update({v.name: v for v in graph.output})
    return infos


def _typed(name: str, infos: dict[str, onnx.ValueInfoProto]) -> onnx.ValueInfoProto:
    info = infos.get(name)
    if info is None or info.type.tensor_type.elem_type == _UNKNOWN:
        raise PartitionError(f"tensor {name!r} crosses a cut but its element type cannot be inferred")
    return info


def split(model: onnx.ModelProto, cuts: Sequence[int], recompute: Collection[str] = ()) -> list[StagePart]:
    """The stages between `cuts`; stage k runs nodes [cuts[k-1], cuts[k]).

    `recompute` names graph inputs every stage can have (a decoder's `attention_mask` and
    `position_ids`, which each stage builds from a session's length): a small tensor an earlier
    stage computed from them alone (a causal mask, rotary tables) is then computed again in each
    later stage that reads it, its nodes copied there (graph.recompute), instead of crossing a cut.
    """
    if recompute:
        from edgeswarm.graph.recompute import split_recomputing  # it builds on this module

        return split_recomputing(model, cuts, frozenset(recompute))
    g = Graph(model)
    n = len(g.nodes)
    previous = 0
    for cut in cuts:
        if not previous < cut < n:
            raise PartitionError(
                f"cut {cut} must lie in ({previous}, {n}): cuts are increasing node positions"
            )
        previous = cut
    bounds = [0, *cuts, n]
    parts = []
    for index, (first, end) in enumerate(itertools.pairwise(bounds)):
        made = {out for node in g.nodes[first:end] for out in node.output if out}
        read = {name for names in g.reads[first:end] for name in names}
        inputs = sorted(
            (t for t in read if t not in made and t not in g.initializers), key=g.rank.__getitem__
        )
        later = g.live_after(end) if end < n else tuple(g.outputs)
        outputs = [t for t in later if t in made]
        if not outputs:
            raise PartitionError(
                f"stage {index} (nodes {first}..{end - 1}) produces nothing later stages read"
            )
        parts.append(stage_part(model, g, index, range(first, end), inputs, outputs, later))
    return parts


def stage_part(
    model: onnx.ModelProto,
    g: Graph,
    index: int,
    positions: Sequence[int],
    inputs: Sequence[str],
    outputs: Sequence[str],
    carry: Sequence[str],
) -> StagePart:
    """The stage of `model` that runs its nodes at `positions` (in order), with the weights they read."""
    read = {name for i in positions for name in g.reads[i]}
    weights = [g.initializers[t] for t in sorted(read) if t in g.initializers]
    graph = helper.make_graph(
        [g.nodes[i] for i in positions],
        f"{model.graph.name}_stage{index}",
        [_typed(t, g.infos) for t in inputs],
        [_typed(t, g.infos) for t in outputs],
        weights,
    )
    stage = helper.make_model(graph, opset_imports=list(model.opset_import), functions=list(model.functions))
    stage.ir_version = model.ir_version
    return StagePart(
        index=index,
        model=stage.SerializeToString(),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        carry=tuple(carry),
        first_node=positions[0],
        last_node=positions[-1],
        parameter_bytes=sum(tensor_nbytes(w) for w in weights),
    )
