"""numpy <-> wire tensors: raw little-endian bytes, a KServe datatype string and a shape.

This is the only module that knows the wire format of a tensor. Decoding never copies
element by element: ``numpy.frombuffer`` views the received bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.errors import InvalidRequest


@dataclass(frozen=True)
class Datatype:
    """One tensor element type as each layer names it: the KServe v2 string, the numpy dtype it travels
    as (little-endian), the ONNX TensorProto name, and the InferTensorContents field that carries its
    values when a client sends typed contents instead of raw bytes."""

    name: str
    dtype: np.dtype[np.generic]
    onnx: str
    contents: str


# The one table of element types the swarm carries; every other layer looks types up here.
DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        Datatype("BOOL", np.dtype(np.bool_), "BOOL", "bool_contents"),
        Datatype("UINT8", np.dtype(np.uint8), "UINT8", "uint_contents"),
        Datatype("UINT16", np.dtype("<u2"), "UINT16", "uint_contents"),
        Datatype("UINT32", np.dtype("<u4"), "UINT32", "uint_contents"),
        Datatype("UINT64", np.dtype("<u8"), "UINT64", "uint64_contents"),
        Datatype("INT8", np.dtype(np.int8), "INT8", "int_contents"),
        Datatype("INT16", np.dtype("<i2"), "INT16", "int_contents"),
        Datatype("INT32", np.dtype("<i4"), "INT32", "int_contents"),
        Datatype("INT64", np.dtype("<i8"), "INT64", "int64_contents"),
        Datatype("FP16", np.dtype("<f2"), "FLOAT16", "fp32_contents"),
        Datatype("FP32", np.dtype("<f4"), "FLOAT", "fp32_contents"),
        Datatype("FP64", np.dtype("<f8"), "DOUBLE", "fp64_contents"),
    )
}
_BY_KIND = {(d.dtype.kind, d.dtype.itemsize): name for name, d in DATATYPES.items()}
_BY_ONNX = {d.onnx: d for d in DATATYPES.values()}


def by_onnx_name(onnx_name: str) -> Datatype | None:
    """The datatype of an ONNX element type, by its TensorProto name (FLOAT, INT64, ...); None for
    one the swarm does not carry (BFLOAT16, STRING, ...)."""
    return _BY_ONNX.get(onnx_name)


def datatype_of(array: np.ndarray) -> str:
    """The KServe datatype string of an array's dtype."""
    try:
        return _BY_KIND[(array.dtype.kind, array.dtype.itemsize)]
    except KeyError:
        raise InvalidRequest(f"dtype {array.dtype} has no KServe v2 datatype") from None


def datatype(name: str) -> Datatype:
    """The datatype named `name` (a KServe string); InvalidRequest naming the known ones otherwise."""
    try:
        return DATATYPES[name]
    except KeyError:
        known = ", ".join(DATATYPES)
        raise InvalidRequest(f"unsupported datatype {name!r}; expected one of {known}") from None


def dtype_of(name: str) -> np.dtype[np.generic]:
    return datatype(name).dtype


def to_bytes(array: np.ndarray) -> bytes:
    """Raw little-endian bytes of an array, in C order."""
    wire = DATATYPES[datatype_of(array)].dtype
    return np.ascontiguousarray(array, dtype=wire).tobytes()


def declared_bytes(tensor: tensor_pb2.Tensor) -> int:
    """The byte count a tensor's datatype and shape call for, found without taking its data out of
    the message (reading `tensor.data` copies it); -1 for an unknown datatype or a negative dimension."""
    known = DATATYPES.get(tensor.datatype)
    if known is None or any(d < 0 for d in tensor.shape):
        return -1
    return math.prod(tensor.shape) * known.dtype.itemsize


def check_size(name: str, datatype: str, shape: Sequence[int], data: bytes) -> np.dtype:
    """The datatype's dtype; InvalidRequest if a dimension is negative or the byte count does not
    match the shape. Plain integer arithmetic: the coordinator checks every tensor it passes on."""
    dtype = dtype_of(datatype)
    if any(d < 0 for d in shape):
        raise InvalidRequest(f"tensor {name!r}: negative dimension in shape {list(shape)}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise InvalidRequest(
            f"tensor {name!r}: {datatype} shape {list(shape)} needs {expected} bytes, got {len(data)}"
        )
    return dtype


def from_bytes(name: str, datatype: str, shape: Sequence[int], data: bytes) -> np.ndarray:
    """An array viewing `data`; InvalidRequest if the byte count does not match the shape."""
    dtype = check_size(name, datatype, shape, data)
    return np.frombuffer(data, dtype=dtype).reshape(tuple(shape))


def encode(name: str, array: np.ndarray) -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(
        name=name, datatype=datatype_of(array), shape=list(array.shape), data=to_bytes(array)
    )


def decode(tensor: tensor_pb2.Tensor) -> np.ndarray:
    return from_bytes(tensor.name, tensor.datatype, list(tensor.shape), tensor.data)


def encode_all(arrays: Mapping[str, np.ndarray]) -> list[tensor_pb2.Tensor]:
    return [encode(name, array) for name, array in arrays.items()]


def decode_all(tensors: Sequence[tensor_pb2.Tensor]) -> dict[str, np.ndarray]:
    return {t.name: decode(t) for t in tensors}
