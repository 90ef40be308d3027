"""The coordinator's model store, on disk under its state directory.

    models/<sha256>/            the files of a model as sent (the .onnx and its external data), where
                                sha256 is the content address of them all; model.json describes them
    models/<sha256>/variants/   the model quantized ("int8.onnx", ...), made once and kept
    stages/<sha256>.onnx        each stage cut from a model, by the sha256 of its graph file; a stage
    stages/<sha256>.data        with external data names its data file `<sha256 of the data>.data`
    incoming/                   uploads and stages being written; swept at start

Stages are what workers are sent, from disk, when they load, reload or are re-planned, so a restarted
coordinator can reload a worker that lost its cache. Everything counts against one byte quota: room is
made by deleting stages no plan uses, then undeployed models, least recently used first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgeswarm.errors import NotFound, ResourceExhausted
from edgeswarm.graph.externaldata import data_files, data_shard

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
META = "model.json"


@dataclass(frozen=True)
class StoredFile:
    name: str  # relative to the model's directory
    size: int
    sha256: str


@dataclass(frozen=True)
class StoredModel:
    sha256: str
    name: str  # as last deployed
    directory: Path
    files: tuple[StoredFile, ...]  # the .onnx first
    variants: dict[str, int] = field(default_factory=dict)  # method -> bytes
    # The stages cut from it, by digest, each with the digests of its data files.
    stages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    last_used: float = 0.0
    names: tuple[str, ...] = ()  # every name it was deployed as

    @property
    def path(self) -> Path:
        return self.directory / self.files[0].name

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def external(self) -> bool:
        return len(self.files) > 1

    def variant_path(self, method: str) -> Path:
        return self.directory / "variants" / f"{method}.onnx"


def content_address(files: list[StoredFile]) -> str:
    """The sha256 of a model's files: their names, sizes and digests, in order."""
    text = "\n".join(f"{f.name}\t{f.size}\t{f.sha256}" for f in files)
    return hashlib.sha256(text.encode()).hexdigest()


class ModelStore:
    """`quota`: most bytes held (0: no limit)."""

    def __init__(self, root: Path, quota: int = 0) -> None:
        self.root = root
        self.quota = quota
        self.models_dir = root / "models"
        self.stages_dir = root / "stages"
        self.incoming_dir = root / "incoming"
        for directory in (self.models_dir, self.stages_dir, self.incoming_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._sweep()

    def _sweep(self) -> None:
        for path in self.incoming_dir.iterdir():
            log.info("store_swept path=%s", path.name)
            _remove(path)

    # Uploads and stages being written.

    @contextlib.contextmanager
    def incoming(self) -> Iterator[Path]:
        """A fresh directory to write into; removed with whatever is left in it on the way out."""
        path = Path(tempfile.mkdtemp(dir=self.incoming_dir))
        try:
            yield path
        finally:
            _remove(path)

    def commit(self, directory: Path, name: str, files: list[StoredFile]) -> StoredModel:
        """Moves an upload received into `directory` to its content address (or keeps the copy already
        there) and returns it, as just used."""
        sha = content_address(files)
        target = self.models_dir / sha
        if not target.is_dir():
            (directory / META).write_text(json.dumps({"files": [vars(f) for f in files]}))
            directory.rename(target)
            directory.mkdir()  # for `incoming` to remove
        self._update(sha, name=name)
        return self.model(sha)

    def put(self, name: str, data: bytes, file_name: str = "model.onnx") -> StoredModel:
        """Keeps a model of one file given as bytes (a model without external data)."""
        with self.incoming() as directory:
            (directory / file_name).write_bytes(data)
            files = [StoredFile(file_name, len(data), hashlib.sha256(data).hexdigest())]
            return self.commit(directory, name, files)

    # Models.

    def model(self, sha256: str) -> StoredModel:
        directory = self.models_dir / sha256
        try:
            meta = json.loads((directory / META).read_text())
        except (OSError, ValueError) as exc:
            raise NotFound(
                f"model {sha256[:12]} is not in the coordinator's store (evicted to make room?): deploy "
                "it again"
            ) from exc
        return StoredModel(
            sha256=sha256,
            name=meta.get("name", ""),
            names=tuple(meta.get("names", ())),
            directory=directory,
            files=tuple(StoredFile(**f) for f in meta["files"]),
            variants=meta.get("variants", {}),
            stages={sha: tuple(data) for sha, data in meta.get("stages", {}).items()},
            last_used=(directory / META).stat().st_mtime,
        )

    def models(self) -> list[StoredModel]:
        held = []
        for path in sorted(self.models_dir.iterdir()):
            if _SHA256.match(path.name):
                with contextlib.suppress(NotFound):
                    held.append(self.model(path.name))
        return held

    def touch(self, sha256: str) -> None:
        """Marks a model as just used, so that it is the last to be evicted."""
        with contextlib.suppress(OSError):
            (self.models_dir / sha256 / META).touch()

    def _update(self, sha256: str, **changes: Any) -> None:
        path = self.models_dir / sha256 / META
        meta = json.loads(path.read_text())
        for key, value in changes.items():
            if key == "stages":
                meta["stages"] = {**meta.get("stages", {}), **value}
            elif key == "name":
                meta["name"] = value
                meta["names"] = sorted({*meta.get("names", ()), value})
            elif key == "variants":
                meta["variants"] = {**meta.get("variants", {}), **value}
            else:
                meta[key] = value
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(meta))
        partial.replace(path)

    def add_variant(self, model: StoredModel, method: str, data: bytes) -> Path:
        """Keeps `model` quantized by `method` (the file's bytes); returns its path."""
        path = model.variant_path(method)
        path.parent.mkdir(exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)
        self._update(model.sha256, variants={method: len(data)})
        return path

    def add_variant_size(self, model: StoredModel, method: str, size: int) -> None:
        """Records the bytes of `model` quantized by `method` where it is kept as stages only."""
        self._update(model.sha256, variants={method: size})

    def record_stages(self, model: StoredModel, stages: Mapping[str, Sequence[str]]) -> None:
        """Notes the stages cut from `model`: each one's digest, with the digests of its data files."""
        self._update(model.sha256, stages={sha: list(data) for sha, data in stages.items()})

    def kept_stage_bytes(self, model: StoredModel) -> int:
        """Bytes of the stages cut from `model` that the store still holds whole (stat'ed, not read)."""
        total = 0
        for sha, data in model.stages.items():
            paths = [self.stage_path(sha), *(self.data_path(d) for d in data)]
            with contextlib.suppress(FileNotFoundError):
                total += sum(p.stat().st_size for p in paths)
        return total

    # Stages.

    def stage_path(self, sha256: str) -> Path:
        return self.stages_dir / f"{sha256}.onnx"

    def data_path(self, sha256: str) -> Path:
        return self.stages_dir / f"{sha256}.data"

    def put_tokenizer(self, data: bytes, config: bytes = b"") -> str:
        """Keeps a tokenizer file and its config, if any (small; never evicted); returns the sha256
        that names them."""
        sha = hashlib.sha256(hashlib.sha256(data).digest() + hashlib.sha256(config).digest()).hexdigest()
        directory = self.tokenizer_path(sha).parent
        if not directory.is_dir():
            partial = Path(tempfile.mkdtemp(dir=self.incoming_dir))
            (partial / "tokenizer.json").write_bytes(data)
            if config:
                (partial / "tokenizer_config.json").write_bytes(config)
            directory.parent.mkdir(exist_ok=True)
            partial.replace(directory)
        return sha

    def tokenizer_path(self, sha256: str) -> Path:
        return self.root / "tokenizers" / sha256 / "tokenizer.json"

    def tokenizer_config_path(self, sha256: str) -> Path:
        return self.root / "tokenizers" / sha256 / "tokenizer_config.json"

    def has_stage(self, sha256: str) -> bool:
        return self.stage_path(sha256).is_file()

    def put_stage(self, data: bytes) -> str:
        """Keeps a stage whose weights are all inside its graph file; returns its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.stage_path(sha)
        if not path.is_file():
            partial = self.incoming_dir / f"{sha}.onnx"
            partial.write_bytes(data)
            partial.replace(path)
        return sha

    def adopt_stage(self, graph: Path, data: Path | None, data_sha: str = "") -> str:
        """Moves a stage written under incoming/ (its graph naming `<data_sha>.data`) into place."""
        if data is not None:
            data.replace(self.data_path(data_sha))
        sha = _file_sha256(graph)
        graph.replace(self.stage_path(sha))
        return sha

    def stage_files(self, sha256: str) -> list[tuple[str, Path, bool]]:
        """(sha256, path, is external data) of what a worker needs to load the stage, its data first;
        NotFound when the store does not hold it."""
        graph = self.stage_path(sha256)
        if not graph.is_file():
            raise NotFound(f"stage {sha256[:12]} is not in the coordinator's store")
        files = []
        for location in data_files(onnx.load(str(graph), load_external_data=False)):
            data_sha = data_shard(location)
            if data_sha is None or not self.data_path(data_sha).is_file():
                raise NotFound(f"stage {sha256[:12]}: its data file {location!r} is not in the store")
            files.append((data_sha, self.data_path(data_sha), True))
        files.append((sha256, graph, False))
        return files

    # The quota.

    def used(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def make_room(self, size: int, keep_models: set[str], keep_stages: set[str]) -> None:
        """Deletes what it must (stages not in `keep_stages`, then models not in `keep_models`, least
        recently used first) for `size` more bytes to fit the quota; ResourceExhausted, deleting
        nothing, when they cannot."""
        if self.quota <= 0:
            return
        used = self.used()
        if used + size <= self.quota:
            return
        stages = self._stage_candidates(keep_stages)
        models = sorted((m for m in self.models() if m.sha256 not in keep_models), key=lambda m: m.last_used)
        freeable = sum(s for _, s in stages) + sum(_tree_size(m.directory) for m in models)
        if used - freeable + size > self.quota:
            raise ResourceExhausted(
                f"{size} bytes do not fit the coordinator's model store: its quota is {self.quota} "
                f"bytes and {used - freeable} of them hold deployed models and their stages"
            )
        for paths, freed in [*stages, *((m.directory, _tree_size(m.directory)) for m in models)]:
            if used + size <= self.quota:
                break
            _remove(paths)
            used -= freed
            log.info("store_evicted path=%s bytes=%d", paths.name, freed)

    def _stage_candidates(self, keep: set[str]) -> list[tuple[Path, int]]:
        """Stage files no kept stage needs, least recently used first."""
        needed: set[Path] = set()
        for sha in keep:
            with contextlib.suppress(NotFound):
                needed.update(path for _, path, _ in self.stage_files(sha))
        files = [p for p in self.stages_dir.iterdir() if p.is_file() and p not in needed]
        files.sort(key=lambda p: p.stat().st_mtime)
        return [(p, p.stat().st_size) for p in files]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
