"""The inputs and outputs of an ONNX model, as KServe datatypes and shapes."""

from __future__ import annotations

import onnx

from edgeswarm.errors import InvalidRequest
from edgeswarm.plans import Signature, TensorSpec

_DATATYPES: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
}


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    datatype = _DATATYPES.get(tensor.elem_type)
    if not value.type.HasField("tensor_type") or datatype is None:
        raise InvalidRequest(f"tensor {value.name!r} has a type the swarm cannot carry")
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, datatype, dims)


def signature_of(model: onnx.ModelProto) -> Signature:
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    return Signature(inputs=inputs, outputs=tuple(_spec(v) for v in model.graph.output))
