"""Writing stages of a model stored with external data, reading each weight from disk only when its
stage is written. Peak memory is about one tensor plus the graph structure, whatever the model's size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from edgeswarm.graph.costs import tensor_nbytes
from edgeswarm.graph.partition import StagePart, split

COPY_CHUNK = 16 * 1024 * 1024
# Small tensors are read into the graph, as onnx.save_model keeps them by default: shape inference (ours
# and ONNX Runtime's) needs the values of shape inputs such as Unsqueeze's axes.
INLINE_BYTES = 1024


@dataclass(frozen=True)
class StageFiles:
    part: StagePart  # its `model` holds the graph; weights stay outside
    model: Path
    data: Path


def split_to_files(model_path: Path, cuts: Sequence[int], out_dir: Path) -> list[StageFiles]:
    """Cuts the model at `model_path` and writes each stage as `stage<k>.onnx` + `stage<k>.data`.

    The model is read without its external data; each stage's weights are copied from the source
    data files range by range, so a weight used by two stages is written into both.
    """
    base = model_path.parent
    model = load_structure(model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = []
    for part in split(model, cuts):
        stage = onnx.load_from_string(part.model)
        data_path = out_dir / f"stage{part.index}.data"
        with data_path.open("wb") as data:
            for tensor in stage.graph.initializer:
                if not uses_external_data(tensor):
                    continue
                source = ExternalDataInfo(tensor)
                offset = data.tell()
                length = _copy_range(base / source.location, source.offset or 0, source.length, data)
                point_at(tensor, data_path.name, offset, length)
        model_file = out_dir / f"stage{part.index}.onnx"
        onnx.save_model(stage, str(model_file))
        stages.append(StageFiles(part, model_file, data_path))
    return stages


def load_structure(model_path: Path) -> onnx.ModelProto:
    """The model at `model_path` with its small weights read and its large external ones left on disk."""
    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        if uses_external_data(tensor) and tensor_nbytes(tensor) <= INLINE_BYTES:
            _inline(tensor, model_path.parent)
    return model


def _copy_range(source: Path, offset: int, length: int | None, out: BinaryIO) -> int:
    """Copies `length` bytes (all when None) from `offset` of `source` to `out`; returns the count."""
    copied = 0
    with source.open("rb") as src:
        src.seek(offset)
        while length is None or copied < length:
            want = COPY_CHUNK if length is None else min(COPY_CHUNK, length - copied)
            chunk = src.read(want)
            if not chunk:
                break
            out.write(chunk)
            copied += len(chunk)
    if length is not None and copied != length:
        raise ValueError(f"{source}: wanted {length} bytes at {offset}, the file has {copied}")
    return copied


def _inline(tensor: onnx.TensorProto, base: Path) -> None:
    source = ExternalDataInfo(tensor)
    buffer = io.BytesIO()
    _copy_range(base / source.location, source.offset or 0, tensor_nbytes(tensor), buffer)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = buffer.getvalue()


def point_at(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Makes `tensor`'s external-data entry name `location` (onnx's own helper wants the bytes in memory)."""
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL
