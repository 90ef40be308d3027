"""Static cost estimates of ONNX nodes: FLOPs from shapes, bytes of tensors. Pure.

FLOPs count a multiply-add as 2. Estimated exactly (from the shapes shape inference gives, symbolic
dimensions at 1 unless the caller resolved them) for MatMul, Gemm, Conv, ConvTranspose and the
attention ops (Attention, MultiHeadAttention); every other node counts one FLOP per output element,
which is right in order of magnitude for element-wise ops and normalizations and small beside the
matrix products in the models that matter. A node whose shapes are unknown counts 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import onnx
from onnx import helper

Shape = tuple[int, ...]


def dims_of(info: onnx.ValueInfoProto) -> Shape | None:
    """Dimensions of a tensor, symbolic ones at 1; None when the rank is unknown."""
    tensor = info.type.tensor_type
    if not info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim)


def itemsize(elem_type: int) -> int:
    return int(max(helper.tensor_dtype_to_np_dtype(elem_type).itemsize, 1))


def tensor_nbytes(tensor: onnx.TensorProto) -> int:
    """Bytes of a weight's values, from its dims and type alone (its data may be on disk)."""
    return math.prod(tensor.dims) * itemsize(tensor.data_type)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def node_flops(node: onnx.NodeProto, shapes: Mapping[str, Shape]) -> int:
    inputs = [shapes.get(n) if n else None for n in node.input]
    out = shapes.get(node.output[0]) if node.output and node.output[0] else None
    if out is None:
        return 0
    elements = math.prod(out)
    op = node.op_type
    if op == "MatMul" and inputs[0]:
        return 2 * elements * inputs[0][-1]
    if op == "Gemm" and inputs[0]:
        k = inputs[0][0] if _attr(node, "transA", 0) else inputs[0][-1]
        return 2 * elements * k + elements
    if op in ("Conv", "ConvTranspose") and len(inputs) > 1 and inputs[1] and inputs[0]:
        weight = inputs[1]
        if op == "Conv":  # weight: [C_out, C_in / group, k...]
            return 2 * elements * math.prod(weight[1:])
        return 2 * math.prod(inputs[0]) * math.prod(weight[1:])  # weight: [C_in, C_out / group, k...]
    if op in ("Attention", "MultiHeadAttention") and inputs[0]:
        # QK^T and (softmax)V over the whole hidden size, plus the projections when the op has weights.
        batch, seq, hidden = (inputs[0] + (1, 1, 1))[:3]
        flops = 4 * batch * seq * seq * hidden
        if op == "Attention" and len(inputs) > 1 and inputs[1]:
            flops += 2 * batch * seq * math.prod(inputs[1])
        return flops
    return elements


def graph_shapes(inferred: onnx.ModelProto) -> dict[str, Shape]:
    """Every tensor's shape that shape inference (or an initializer) tells."""
    graph = inferred.graph
    shapes: dict[str, Shape] = {i.name: tuple(i.dims) for i in graph.initializer}
    for info in (*graph.input, *graph.value_info, *graph.output):
        shape = dims_of(info)
        if shape is not None:
            shapes[info.name] = shape
    return shapes
