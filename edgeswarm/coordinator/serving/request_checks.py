"""Checking a KServe ModelInferRequest against a model's signature. Pure: the data is never decoded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm.errors import InternalError, InvalidRequest
from edgeswarm.plans import Signature, TensorSpec


def describe(spec: TensorSpec) -> str:
    return f"{spec.datatype} {list(spec.shape)}"


def check_shape(model: str, spec: TensorSpec, shape: Sequence[int]) -> None:
    fits = len(shape) == len(spec.shape) and all(
        want in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    )
    if not fits:
        raise InvalidRequest(
            f"model {model!r}: input {spec.name!r} must have shape {list(spec.shape)} "
            f"(-1 = any), got {list(shape)}"
        )


def input_tensors(model: str, signature: Signature, request: pb.ModelInferRequest) -> list[tensor_pb2.Tensor]:
    """The request's inputs as wire tensors, or InvalidRequest naming the first thing wrong."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(
            f"{len(request.inputs)} input(s) but {len(raw)} raw_input_contents; there must be one per input"
        )
    seen: set[str] = set()
    tensors = []
    for i, given in enumerate(request.inputs):
        spec = signature.input(given.name)
        if spec is None:
            names = ", ".join(t.name for t in signature.inputs)
            raise InvalidRequest(f"model {model!r} has no input {given.name!r}; its inputs are {names}")
        if given.name in seen:
            raise InvalidRequest(f"input {given.name!r} is given twice")
        seen.add(given.name)
        if given.datatype != spec.datatype:
            raise InvalidRequest(
                f"model {model!r}: input {spec.name!r} must be {spec.datatype}, "
                f"got {given.datatype or 'none'}"
            )
        shape = list(given.shape)
        check_shape(model, spec, shape)
        data = raw[i] if raw else _from_contents(given)
        codec.check_size(given.name, given.datatype, shape, data)
        tensors.append(tensor_pb2.Tensor(name=given.name, datatype=given.datatype, shape=shape, data=data))
    missing = [t for t in signature.inputs if t.name not in seen]
    if missing:
        listing = ", ".join(f"{t.name!r} ({describe(t)})" for t in missing)
        raise InvalidRequest(f"model {model!r}: missing input {listing}")
    return tensors


def _from_contents(given: pb.ModelInferRequest.InferInputTensor) -> bytes:
    known = codec.DATATYPES.get(given.datatype)
    if known is None:
        raise InvalidRequest(f"input {given.name!r}: datatype {given.datatype!r} is not supported")
    values = getattr(given.contents, known.contents)
    wide = np.asarray(values, dtype=np.float64 if known.dtype.kind == "f" else None)
    # Typed contents are wider than their datatype (uint32 for UINT8, fp32 for FP16): a value the
    # datatype cannot hold is refused, not wrapped or turned into inf.
    if known.dtype.kind in "iu" and wide.size:
        limits = np.iinfo(known.dtype)  # type: ignore[type-var]
        if wide.min() < limits.min or wide.max() > limits.max:
            bad = wide[(wide < limits.min) | (wide > limits.max)][0]
            raise InvalidRequest(
                f"input {given.name!r}: {given.datatype} holds {limits.min}..{limits.max}, not {bad}"
            )
    elif known.dtype.kind == "f" and wide.size:
        finite = np.isfinite(wide)
        limit = np.finfo(known.dtype).max  # type: ignore[type-var]
        if np.any(finite & (np.abs(wide) > limit)):
            bad = wide[finite & (np.abs(wide) > limit)][0]
            raise InvalidRequest(f"input {given.name!r}: {bad} is beyond {given.datatype}'s range (±{limit})")
    return codec.to_bytes(wide.astype(known.dtype))


def output_names(model: str, signature: Signature, request: pb.ModelInferRequest) -> tuple[str, ...]:
    if not request.outputs:
        return signature.output_names
    wanted = tuple(o.name for o in request.outputs)
    unknown = [n for n in wanted if n not in signature.output_names]
    if unknown:
        names = ", ".join(signature.output_names)
        raise InvalidRequest(f"model {model!r} has no output {unknown[0]!r}; its outputs are {names}")
    return wanted


def check_outputs(
    model: str, signature: Signature, wanted: Sequence[str], tensors: Sequence[tensor_pb2.Tensor]
) -> None:
    """A worker's answer must be exactly the outputs asked for, of the declared types; else InternalError."""
    names = [t.name for t in tensors]
    if names != list(wanted):
        raise InternalError(f"model {model!r}: the last stage returned {names}, expected {list(wanted)}")
    for tensor in tensors:
        spec = next(t for t in signature.outputs if t.name == tensor.name)
        shape = list(tensor.shape)
        bad_shape = len(shape) != len(spec.shape) or any(
            want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
        )
        if tensor.datatype != spec.datatype or bad_shape:
            raise InternalError(
                f"model {model!r}: output {tensor.name!r} came back as {tensor.datatype} {shape}, "
                f"declared {describe(spec)}"
            )
        try:
            codec.check_size(tensor.name, tensor.datatype, shape, tensor.data)
        except InvalidRequest as exc:
            raise InternalError(f"model {model!r}: {exc.message}") from exc
