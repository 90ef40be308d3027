"""The worker's shard cache: least recently used shards go first, loaded ones never."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from edgeswarm.errors import ResourceExhausted
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


def test_partial_files_of_a_killed_upload_are_swept_at_start(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    kept = put(store, b"k" * 100, 1000.0)
    writer = store.writer("0" * 64, 1 << 21)  # a worker killed here leaves its partial file
    writer.write(b"p" * (1 << 20))
    again = ShardStore(tmp_path)
    assert len(again.swept) == 1 and again.swept[0][1] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kept}.onnx"]


def test_room_is_made_by_evicting_least_recently_used_or_refused(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    old, loaded, new = (put(store, bytes([i]) * 100, 1000.0 + i) for i in range(3))
    assert store.make_room(150, 0, set()) == []  # no limit
    assert store.make_room(50, 300, {loaded}) == [old]  # 300 held, 50 more: the oldest unloaded goes
    with pytest.raises(
        ResourceExhausted, match="does not fit this worker's cache of 300 bytes, 100 of which"
    ):
        store.make_room(250, 300, {loaded})
    assert set(store.digests()) == {loaded, new}  # a refusal deletes nothing
