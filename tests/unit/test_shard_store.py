"""The worker's shard cache: least recently used shards go first, loaded ones never."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgeswarm.worker.cache import ShardStore


def put(store: ShardStore, data: bytes, mtime: float) -> str:
    sha = hashlib.sha256(data).hexdigest()
    writer = store.writer(sha, len(data))
    writer.write(data)
    writer.commit()
    os.utime(store.path(sha), (mtime, mtime))
    return sha


def test_eviction_keeps_the_newest_and_the_kept_within_the_limit(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    old, kept, new = (put(store, bytes([i]) * 100, 1000.0 + i) for i in range(3))
    assert store.evict(0, set()) == []  # no limit
    assert store.evict(250, {kept}) == [old]
    assert set(store.digests()) == {kept, new}
    assert store.evict(100, {kept}) == [new]
    assert store.digests() == [kept]


def test_a_touched_shard_counts_as_recently_used(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    first = put(store, b"a" * 100, 1000.0)
    second = put(store, b"b" * 100, 1001.0)
    store.touch(first)
    assert store.evict(100, set()) == [second]
