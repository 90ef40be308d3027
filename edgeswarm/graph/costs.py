"""Static cost estimates of ONNX nodes: FLOPs from shapes, bytes of tensors. Pure.

FLOPs count a multiply-add as 2. Estimated exactly (from the shapes shape inference gives, symbolic
dimensions at 1 unless the caller resolved them) for MatMul, Gemm, Conv, ConvTranspose and the
attention ops (Attention, MultiHeadAttention); every other node counts one FLOP per output element,
which is right in order of magnitude for element-wise ops and normalizations and small beside the
matrix products in the models that matter. A node whose shapes are unknown counts 0.

Sizes where onnx's shape inference loses a dimension (a Slice whose ends are computed, as in a rotary
embedding) come from ONNX Runtime's symbolic shape inference, which follows such computations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import onnx
from onnx import helper

Shape = tuple[int, ...]
_UNDEFINED = onnx.TensorProto.UNDEFINED
# Initializers this small keep their values for symbolic shape inference (a Reshape's target, a Slice's
# ends); it sees larger ones as inputs of their shape, so their data is neither copied nor read.
_VALUE_BYTES = 1024


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


def info_nbytes(info: onnx.ValueInfoProto, symbolic_at_one: bool) -> int | None:
    """Bytes of a tensor from its inferred type and shape; None when either is unknown, or when a
    dimension is not a number and `symbolic_at_one` is False (when True, such a dimension counts 1)."""
    tensor = info.type.tensor_type
    if (
        not info.type.HasField("tensor_type")
        or tensor.elem_type == _UNDEFINED
        or not tensor.HasField("shape")
    ):
        return None
    if not symbolic_at_one and not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    shape = dims_of(info)
    return None if shape is None else math.prod(shape) * itemsize(tensor.elem_type)


def symbolic_infos(
    model: onnx.ModelProto, inputs: Mapping[str, onnx.ValueInfoProto]
) -> dict[str, onnx.ValueInfoProto]:
    """Each tensor's type and shape as ONNX Runtime's symbolic shape inference tells them, the graph
    inputs declared as in `inputs` where it names them; only the tensors it typed, none where it fails."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    if not any(o.domain in ("", "ai.onnx") and o.version >= 7 for o in model.opset_import):
        return {}  # the oldest opsets it does not read
    inference = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=True, guess_output_rank=False, verbose=0)
    try:
        # The steps of SymbolicShapeInference.infer_shapes, which also writes the model into the working
        # directory when it cannot type every tensor; what it typed before it stopped is kept.
        inference._preprocess(_shapes_only(model, inputs))
        while inference.run_:
            inference._infer_impl()
        inference._update_output_from_vi()
    except Exception:  # an operator it has no rule for, or a graph it cannot follow
        return {}
    graph = inference.out_mp_.graph
    return {
        v.name: v
        for v in (*graph.input, *graph.value_info, *graph.output)
        if info_nbytes(v, symbolic_at_one=True) is not None
    }


def _shapes_only(model: onnx.ModelProto, inputs: Mapping[str, onnx.ValueInfoProto]) -> onnx.ModelProto:
    """The model with `inputs` for its graph inputs of those names, and its large weights (and those
    left on disk) turned into graph inputs of their type and shape."""
    graph = model.graph
    declared = {v.name for v in graph.input}
    lean = onnx.ModelProto(
        ir_version=model.ir_version, opset_import=model.opset_import, functions=model.functions
    )
    lean.graph.name = graph.name
    lean.graph.node.extend(graph.node)
    lean.graph.input.extend(inputs.get(v.name, v) for v in graph.input)
    lean.graph.output.extend(graph.output)
    lean.graph.sparse_initializer.extend(graph.sparse_initializer)
    for weight in graph.initializer:
        on_disk = weight.data_location == onnx.TensorProto.EXTERNAL
        if on_disk or tensor_nbytes(weight) > _VALUE_BYTES:
            if weight.name not in declared:
                lean.graph.input.append(
                    helper.make_tensor_value_info(weight.name, weight.data_type, weight.dims)
                )
        else:
            lean.graph.initializer.append(weight)
    return lean
