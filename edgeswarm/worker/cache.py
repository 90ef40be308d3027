"""Content-addressed shard cache on disk: one file per sha256, written atomically, verified."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from edgeswarm.errors import InvalidRequest, ResourceExhausted

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_digest(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise InvalidRequest(f"{sha256!r} is not a sha256 hex digest")
    return sha256


PARTIAL_PREFIX = ".incoming-"


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

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def digests(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.onnx") if _SHA256.match(p.stem))

    def writer(self, sha256: str, size: int) -> ShardWriter:
        return ShardWriter(self.path(sha256), sha256, size)

    def touch(self, sha256: str) -> None:
        """Marks a shard as just used, so that it is the last to be evicted."""
        self.path(sha256).touch()

    def make_room(self, size: int, max_bytes: int, keep: set[str]) -> list[str]:
        """Evicts least recently used shards not in `keep` until a shard of `size` bytes fits within
        `max_bytes` (0: no limit); returns the digests deleted, or ResourceExhausted, deleting
        nothing, when it cannot fit."""
        if max_bytes <= 0:
            return []
        shards = [(p.stat(), p) for p in self.root.glob("*.onnx") if _SHA256.match(p.stem)]
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
        shards = [(p.stat(), p) for p in self.root.glob("*.onnx") if _SHA256.match(p.stem)]
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
        self._hash = hashlib.sha256()
        self._written = 0
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)

    def write(self, data: bytes) -> None:
        self._written += len(data)
        if self._written > self.size:
            raise InvalidRequest(f"shard {self.sha256[:12]}: more than the announced {self.size} bytes")
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        digest = self._hash.hexdigest()
        if self._written != self.size:
            self.abort()
            raise InvalidRequest(f"shard {self.sha256[:12]}: got {self._written} of {self.size} bytes")
        if digest != self.sha256:
            self.abort()
            raise InvalidRequest(f"shard {self.sha256[:12]}: content has sha256 {digest[:12]}")
        self._tmp.replace(self.target)

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
