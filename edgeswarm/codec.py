"""numpy <-> wire tensors: raw little-endian bytes, a KServe datatype string and a shape.

This is the only module that knows the wire format of a tensor. Decoding never copies
element by element: ``numpy.frombuffer`` views the received bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.errors import InvalidRequest

# KServe v2 datatype strings and the numpy dtypes they travel as.
DATATYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items()}


def datatype_of(array: np.ndarray) -> str:
    """The KServe datatype string of an array's dtype."""
    try:
        return _BY_KIND[(array.dtype.kind, array.dtype.itemsize)]
    except KeyError:
        raise InvalidRequest(f"dtype {array.dtype} has no KServe v2 datatype") from None


def dtype_of(datatype: str) -> np.dtype[np.generic]:
    try:
        return DATATYPES[datatype]
    except KeyError:
        known = ", ".join(DATATYPES)
        raise InvalidRequest(f"unsupported datatype {datatype!r}; expected one of {known}") from None


def to_bytes(array: np.ndarray) -> bytes:
    """Raw little-endian bytes of an array, in C order."""
    wire = DATATYPES[datatype_of(array)]
    return np.ascontiguousarray(array, dtype=wire).tobytes()


def declared_bytes(tensor: tensor_pb2.Tensor) -> int:
    """The byte count a tensor's datatype and shape call for, found without taking its data out of
    the message (reading `tensor.data` copies it); -1 for an unknown datatype or a negative dimension."""
    dtype = DATATYPES.get(tensor.datatype)
    if dtype is None or any(d < 0 for d in tensor.shape):
        return -1
    return math.prod(tensor.shape) * dtype.itemsize


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
