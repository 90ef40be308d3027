"""The external data files an ONNX model names, checked against what lies beside it: every `location`
a plain relative path inside the model's directory, every weight's bytes within its file."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from edgeswarm.graph.costs import tensor_nbytes

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ExternalDataError(ValueError):
    """A model's external data cannot be used as it is named."""


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    yield from model.graph.initializer
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t


def data_files(model: onnx.ModelProto) -> list[str]:
    """The external data files `model` names, in the order its weights first name them; each a
    relative path inside the model's directory, or ExternalDataError naming the weight."""
    files: dict[str, None] = {}
    for tensor in _tensors(model):
        if uses_external_data(tensor):
            files[checked_location(tensor)] = None
    return list(files)


def relative_inside(text: str) -> PurePosixPath | None:
    """`text` as a path relative to a directory and inside it; None for an empty, absolute or drive
    path, or one that climbs out with `..`."""
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts or ":" in text:
        return None
    return path


def data_shard(location: str) -> str | None:
    """The sha256 a stage's data location names, `<sha256>.data` (how stage files name their data,
    and how a worker keeps it); None for any other name."""
    stem, _, suffix = location.partition(".")
    return stem if _SHA256.match(stem) and suffix == "data" else None


def checked_location(tensor: onnx.TensorProto) -> str:
    location = ExternalDataInfo(tensor).location
    path = relative_inside(location.replace("\\", "/"))
    if path is None:
        raise ExternalDataError(
            f"weight {tensor.name!r} names external data {location!r}: a location must be a relative path "
            "inside the model's directory"
        )
    return str(path)


def check_ranges(model: onnx.ModelProto, size_of: Callable[[str], int | None]) -> None:
    """Checks that each external weight's bytes lie within its file; `size_of(location)` is the file's
    size, None when it is missing. Raises ExternalDataError naming the first weight that does not."""
    for tensor in _tensors(model):
        if not uses_external_data(tensor):
            continue
        location = checked_location(tensor)
        info = ExternalDataInfo(tensor)
        size = size_of(location)
        if size is None:
            raise ExternalDataError(f"weight {tensor.name!r}: its external data file {location!r} is missing")
        offset = info.offset or 0
        length = info.length if info.length is not None else tensor_nbytes(tensor)
        if offset + length > size:
            raise ExternalDataError(
                f"weight {tensor.name!r}: bytes {offset}..{offset + length} of {location!r}, which has "
                f"{size} (truncated?)"
            )


def local_sizes(base: Path) -> Callable[[str], int | None]:
    """`size_of` for check_ranges over files in the directory `base`."""

    def size_of(location: str) -> int | None:
        path = base / location
        return path.stat().st_size if path.is_file() else None

    return size_of


def model_files(path: Path) -> list[tuple[str, Path, int]]:
    """(name, path, size) of the files a deploy of the .onnx at `path` sends: the .onnx, then each
    external data file its weights name, relative to its directory. ExternalDataError when one is
    missing, too short for its weights, or named outside the directory. A file that is no ONNX
    model is sent alone, as it is."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError:  # no ONNX file: sent as it is, for the coordinator to say so
        return [(path.name, path, path.stat().st_size)]
    base = path.parent
    check_ranges(model, local_sizes(base))
    files = [(path.name, path, path.stat().st_size)]
    for location in data_files(model):
        files.append((location, base / location, (base / location).stat().st_size))
    return files
