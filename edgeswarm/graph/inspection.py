"""`edgeswarm inspect`: what a model is and where it can be cut, as one JSON-ready document. Pure."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from edgeswarm.graph.costs import info_nbytes, symbolic_infos, tensor_nbytes
from edgeswarm.graph.partition import Graph, natural_positions
from edgeswarm.graph.signature import signature_of


def _bytes(value: float) -> int | None:
    return None if math.isinf(value) else int(value)


class _Sized(Graph):
    """The graph with each tensor's size as far as shape inference can tell it.

    Once every graph input's shape is a number (given in `input_shapes` or declared so), a tensor's
    size is a number or unknown (None in the report), never a guess. Otherwise symbolic dimensions
    count 1. Where onnx's shape inference lost a dimension (made one up, or left it a symbol when the
    inputs are known), ONNX Runtime's symbolic shape inference, which follows shape computations, is
    asked first.
    """

    def __init__(self, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None) -> None:
        super().__init__(model, input_shapes)
        inputs = {name: self.infos[name] for name in self.inputs if name in self.infos}
        self.concrete = len(inputs) == len(self.inputs) and all(
            info_nbytes(info, symbolic_at_one=False) is not None for info in inputs.values()
        )
        symbols = {d.dim_param for v in inputs.values() for d in v.type.tensor_type.shape.dim if d.dim_param}
        lost = [name for name in self.made_at if name not in inputs and self._lost(name, symbols)]
        self.symbolic = symbolic_infos(model, inputs) if lost else {}

    def _lost(self, name: str, symbols: set[str]) -> bool:
        """Whether onnx's shape inference did not tell `name`'s size: no number once the inputs are
        known, else a dimension that is no number and none of the inputs' symbols."""
        info = self.infos.get(name)
        if info is None or info_nbytes(info, symbolic_at_one=not self.concrete) is None:
            return True
        dims = info.type.tensor_type.shape.dim
        return any(not d.HasField("dim_value") and d.dim_param not in symbols for d in dims)

    def tensor_bytes(self, name: str) -> float:
        for info in (self.symbolic.get(name), self.infos.get(name)):
            size = None if info is None else info_nbytes(info, symbolic_at_one=not self.concrete)
            if size is not None:
                return float(size)
        return float("inf")


def inspect_model(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, Any]:
    """The model's inputs, outputs, size and cost, and every cut position with what crosses it.

    Cuts are listed by position; `rank` orders them by boundary bytes (1 = smallest), and `natural`
    marks the ones between repeated blocks. A tensor's bytes are None where shape inference cannot
    tell its shape (see `_Sized`).
    """
    g = _Sized(model, input_shapes)
    signature = signature_of(model)
    natural = set(natural_positions(g))
    first_reader: dict[str, int] = {}
    for i, reads in enumerate(g.reads):
        for name in reads:
            if name in g.initializers:
                first_reader.setdefault(name, i)
    new_params = [0] * len(g.nodes)
    for name, i in first_reader.items():
        new_params[i] += tensor_nbytes(g.initializers[name])
    flops_before = [0, *itertools.accumulate(g.flops)]
    params_before = [0, *itertools.accumulate(new_params)]
    cuts = []
    for position in range(1, len(g.nodes)):
        tensors = [{"name": t, "bytes": _bytes(g.tensor_bytes(t))} for t in g.live_after(position)]
        node = g.nodes[position - 1]
        cuts.append(
            {
                "position": position,
                "after_node": node.name or f"{node.op_type}#{position - 1}",
                "natural": position in natural,
                "flops_before": flops_before[position],
                "parameter_bytes_before": params_before[position],
                "boundary_bytes": _bytes(g.live_bytes(position)),
                "tensors": tensors,
            }
        )
    order = sorted(cuts, key=lambda c: (c["boundary_bytes"] is None, c["boundary_bytes"] or 0, c["position"]))
    for rank, cut in enumerate(order, start=1):
        cut["rank"] = rank
    tensor = [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in signature.inputs]
    return {
        "inputs": tensor,
        "outputs": [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in signature.outputs
        ],
        "input_shapes": {k: list(v) for k, v in (input_shapes or {}).items()},
        "nodes": len(g.nodes),
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "parameter_bytes": sum(new_params),
        "quantized_bytes_estimate": quantized_estimate(model),
        "flops": flops_before[-1],
        "cuts": cuts,
    }


def quantized_estimate(model: onnx.ModelProto) -> dict[str, int]:
    """Parameter bytes after each quantization of graph/quantize.py, estimated from the weights'
    shapes: int8 stores a float MatMul/Gemm weight (its input B) in one byte per value, int4 a MatMul
    weight [K, N] in blocks of 32 along K of 16 bytes plus a 4-byte scale."""
    initializers = {t.name: t for t in model.graph.initializer}
    total = sum(tensor_nbytes(t) for t in initializers.values())
    saved = {"int8": 0, "int4": 0}
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[1] in seen:
            continue
        weight = initializers.get(node.input[1])
        if weight is None or weight.data_type != onnx.TensorProto.FLOAT or len(weight.dims) != 2:
            continue
        seen.add(node.input[1])
        size = tensor_nbytes(weight)
        saved["int8"] += size - size // 4 - 5
        if node.op_type == "MatMul":
            k, n = weight.dims
            saved["int4"] += size - n * math.ceil(k / 32) * 20
    return {method: total - bytes_saved for method, bytes_saved in saved.items()}


def parse_input_shapes(specs: Sequence[str]) -> dict[str, list[int]]:
    """`NAME=D0,D1,...` options as a mapping; ValueError naming the option that is malformed."""
    shapes = {}
    for spec in specs:
        name, sep, dims = spec.partition("=")
        try:
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            shapes[name] = []
        if not sep or not name or not shapes[name] or any(d < 0 for d in shapes[name]):
            raise ValueError(f"--input-shape {spec!r}: expected NAME=D0,D1,... with non-negative sizes")
    return shapes
