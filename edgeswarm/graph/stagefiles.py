"""Writing stages of a model stored with external data, reading each weight from disk only when its
stage is written. Peak memory is about one tensor plus the graph structure, whatever the model's size.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from edgeswarm.graph.costs import tensor_nbytes
from edgeswarm.graph.externaldata import checked_location
from edgeswarm.graph.partition import StagePart, split

COPY_CHUNK = 16 * 1024 * 1024
# Small tensors are read into the graph, as onnx.save_model keeps them by default: shape inference (ours
# and ONNX Runtime's) needs the values of shape inputs such as Unsqueeze's axes.
INLINE_BYTES = 1024
# Weights of at least ALIGN_BYTES start at a multiple of ALIGNMENT in a stage's data file: ONNX Runtime
# maps such a weight from the file instead of reading it into memory (4 KiB pages on Linux and macOS).
ALIGNMENT = 4096
ALIGN_BYTES = 64 * 1024


class _Writes(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class HashingWriter:
    """A file written chunk by chunk, hashed as it goes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = path.open("wb")

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)
        self.size += len(data)

    def pad_to(self, alignment: int) -> None:
        """Zero bytes up to the next multiple of `alignment`."""
        if self.size % alignment:
            self.write(bytes(alignment - self.size % alignment))

    def close(self) -> str:
        """Closes the file; returns the sha256 of what was written."""
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class StageFiles:
    part: StagePart  # its `model` holds the graph; weights stay outside
    model: Path
    data: Path | None  # `<data_sha256>.data`; None when every weight is inside the graph
    data_sha256: str = ""


def split_to_files(
    model_path: Path,
    cuts: Sequence[int],
    out_dir: Path,
    model: onnx.ModelProto | None = None,
    check: Callable[[list[StagePart]], None] = lambda parts: None,
    recompute: Collection[str] = (),
) -> list[StageFiles]:
    """Cuts the model at `model_path` (whose structure, as `load_structure` reads it, may be given) and
    writes each stage as `stage<k>.onnx` + a data file named by its sha256, which the graph names.
    `check(parts)` sees the stages before any byte is written, and may refuse them by raising.
    `recompute` names the inputs a decoder's stages rebuild themselves, as in `partition.split`.

    The model is read without its external data; each stage's weights are copied from the source
    data files range by range, so a weight used by two stages is written into both.
    """
    base = model_path.parent
    model = model if model is not None else load_structure(model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = []
    parts = split(model, cuts, recompute)
    check(parts)
    for part in parts:
        stage = onnx.load_from_string(part.model)
        external = [t for t in stage.graph.initializer if uses_external_data(t)]
        data_path, data_sha = None, ""
        if external:
            writer = HashingWriter(out_dir / f"stage{part.index}.data.partial")
            placed = []
            try:
                for tensor in external:
                    source = ExternalDataInfo(tensor)
                    if tensor_nbytes(tensor) >= ALIGN_BYTES:
                        writer.pad_to(ALIGNMENT)
                    offset, path = writer.size, base / checked_location(tensor)
                    length = _copy_range(path, source.offset or 0, source.length, writer)
                    placed.append((tensor, offset, length))
            except BaseException:
                writer.discard()
                raise
            data_sha = writer.close()
            data_path = out_dir / f"{data_sha}.data"
            writer.path.replace(data_path)
            for tensor, offset, length in placed:
                point_at(tensor, data_path.name, offset, length)
        model_file = out_dir / f"stage{part.index}.onnx"
        onnx.save_model(stage, str(model_file))
        stages.append(StageFiles(part, model_file, data_path, data_sha))
    return stages


def load_structure(model_path: Path) -> onnx.ModelProto:
    """The model at `model_path` with its small weights read and its large external ones left on disk."""
    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        if uses_external_data(tensor) and tensor_nbytes(tensor) <= INLINE_BYTES:
            _inline(tensor, model_path.parent)
    return model


def _copy_range(source: Path, offset: int, length: int | None, out: _Writes) -> int:
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
    _copy_range(base / checked_location(tensor), source.offset or 0, tensor_nbytes(tensor), buffer)
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
