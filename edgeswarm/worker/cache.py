"""Content-addressed shard cache on disk: one file per sha256, written atomically, verified.

A stage's graph is `<sha256>.onnx`; a stage kept with external data names its data file, itself a
shard, `<sha256>.data` in the same directory, where ONNX Runtime finds (and maps) it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from edgeswarm.errors import InvalidRequest, ResourceExhausted
from edgeswarm.graph.externaldata import ExternalDataError, data_files, data_shard
from edgeswarm.graph.stagefiles import HashingWriter

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_digest(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise InvalidRequest(f"{sha256!r} is not a sha256 hex digest")
    return sha256


PARTIAL_PREFIX = ".incoming-"
KINDS = (".onnx", ".data")


class ShardStore:
    """`swept` holds the partial files a previous process left (killed mid-upload), deleted at start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.swept = self._sweep()

    def _sweep(self) -> list[tuple[str, int]]:
        """Deletes partial files of uploads that never finished; returns (name, bytes) of each."""
        swept = []
        for path in self.root.glob(f"{PARTIAL_PREFIX}*"):
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                swept.append((path.name, size))
        return swept

    def path(self, sha256: str) -> Path:
        return self.root / f"{check_digest(sha256)}.onnx"

    def data_path(self, sha256: str) -> Path:
        return self.root / f"{check_digest(sha256)}.data"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file() or self.data_path(sha256).is_file()

    def _files(self) -> list[Path]:
        return [p for p in self.root.iterdir() if p.suffix in KINDS and _SHA256.match(p.stem)]

    def digests(self) -> list[str]:
        return sorted(p.stem for p in self._files())

    def writer(self, sha256: str, size: int, external_data: bool = False) -> ShardWriter:
        return ShardWriter(self.data_path(sha256) if external_data else self.path(sha256), sha256, size)

    def data_of(self, sha256: str) -> list[str]:
        """The data shards the stage graph `sha256` names, each checked to be in the cache;
        InvalidRequest naming the first that is not, or a location that is no data shard's."""
        try:
            locations = data_files(onnx.load(str(self.path(sha256)), load_external_data=False))
        except (DecodeError, ValueError, ExternalDataError) as exc:
            raise InvalidRequest(f"shard {sha256[:12]} is no ONNX graph this worker can load: {exc}") from exc
        wanted = []
        for location in locations:
            stem = data_shard(location)
            if stem is None:
                raise InvalidRequest(
                    f"shard {sha256[:12]} names external data {location!r}: a stage's data must be a "
                    "shard, named <sha256>.data"
                )
            if not self.data_path(stem).is_file():
                raise InvalidRequest(f"shard {sha256[:12]} needs data shard {stem[:12]}, not in this cache")
            wanted.append(stem)
        return wanted

    def touch(self, sha256: str) -> None:
        """Marks a shard as just used, so that it is the last to be evicted."""
        for path in (self.path(sha256), self.data_path(sha256)):
            with contextlib.suppress(FileNotFoundError):
                path.touch()

    def make_room(self, size: int, max_bytes: int, keep: set[str]) -> list[str]:
        """Evicts least recently used shards not in `keep` until a shard of `size` bytes fits within
        `max_bytes` (0: no limit); returns the digests deleted, or ResourceExhausted, deleting
        nothing, when it cannot fit."""
        if max_bytes <= 0:
            return []
        shards = [(p.stat(), p) for p in self._files()]
        pinned = sum(st.st_size for st, p in shards if p.stem in keep)
        if size + pinned > max_bytes:
            raise ResourceExhausted(
                f"a shard of {size} bytes does not fit this worker's cache of {max_bytes} bytes, "
                f"{pinned} of which hold loaded stages"
            )
        return self.evict(max_bytes - size, keep)

    def evict(self, max_bytes: int, keep: set[str]) -> list[str]:
        """Deletes the least recently used shards not in `keep` until the cache holds at most `max_bytes`
        (0: no limit); returns the digests deleted."""
        if max_bytes <= 0:
            return []
        shards = [(p.stat(), p) for p in self._files()]
        total = sum(st.st_size for st, _ in shards)
        evicted = []
        for st, path in sorted(shards, key=lambda item: item[0].st_mtime):
            if total <= max_bytes:
                break
            if path.stem in keep:
                continue
            path.unlink(missing_ok=True)
            total -= st.st_size
            evicted.append(path.stem)
        return evicted


class ShardWriter:
    """Streams chunks to a temporary file; `commit` verifies size and digest and renames it into place."""

    def __init__(self, target: Path, sha256: str, size: int) -> None:
        self.target = target
        self.sha256 = sha256
        self.size = size
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
        os.close(fd)
        self._out = HashingWriter(Path(name))

    def write(self, data: bytes) -> None:
        if self._out.size + len(data) > self.size:
            raise InvalidRequest(f"shard {self.sha256[:12]}: more than the announced {self.size} bytes")
        self._out.write(data)

    def commit(self) -> None:
        digest = self._out.close()
        if self._out.size != self.size:
            self.abort()
            raise InvalidRequest(f"shard {self.sha256[:12]}: got {self._out.size} of {self.size} bytes")
        if digest != self.sha256:
            self.abort()
            raise InvalidRequest(f"shard {self.sha256[:12]}: content has sha256 {digest[:12]}")
        self._out.path.replace(self.target)

    def abort(self) -> None:
        self._out.discard()
