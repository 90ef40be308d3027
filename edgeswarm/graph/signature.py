"""The inputs and outputs of an ONNX model, as KServe datatypes and shapes."""

from __future__ import annotations

import onnx

from edgeswarm.codec import Datatype, by_onnx_name
from edgeswarm.errors import InvalidRequest
from edgeswarm.plans import Signature, TensorSpec


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    known = datatype_of(tensor.elem_type) if value.type.HasField("tensor_type") else None
    if known is None:
        raise InvalidRequest(f"tensor {value.name!r} has a type the swarm cannot carry")
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, known.name, dims)


def datatype_of(elem_type: int) -> Datatype | None:
    """The swarm's datatype of an ONNX element type; None for one it cannot carry."""
    try:
        name = onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return None
    return by_onnx_name(name)


def signature_of(model: onnx.ModelProto) -> Signature:
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    return Signature(inputs=inputs, outputs=tuple(_spec(v) for v in model.graph.output))
