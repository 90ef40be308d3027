"""Reading a model sent for deploy: a parsed, checked ONNX graph, or an error that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from edgeswarm.errors import InvalidRequest
from edgeswarm.graph.stagefiles import load_structure


def parse_model(name: str, data: bytes) -> onnx.ModelProto:
    """The ONNX model in `data`, or InvalidRequest saying why it cannot be deployed."""
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError) as exc:
        raise InvalidRequest(f"model {name!r} is not an ONNX file: {exc}") from exc
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            raise InvalidRequest(
                f"model {name!r} keeps weight {tensor.name!r} in external file "
                f"{ExternalDataInfo(tensor).location!r}, which was not sent with it"
            )
    _check(name, model)
    return model


def load_checked_structure(name: str, path: Path) -> onnx.ModelProto:
    """The checked graph of a model kept in external data, its large weights left on disk (the
    checker, given the path, finds each data file without reading it)."""
    _check(name, str(path))
    try:
        return load_structure(path)
    except (DecodeError, ValueError, OSError) as exc:
        raise InvalidRequest(f"model {name!r} cannot be read: {exc}") from exc


def _check(name: str, model: onnx.ModelProto | str) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidRequest(f"model {name!r} fails the ONNX checker: {first}") from exc
