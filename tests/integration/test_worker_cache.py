"""A worker's shard cache through real processes: partial files a killed upload left are swept at
start, and a shard over the cache quota is refused before it is written, with the numbers."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edgeswarm.client import Client, ResourceExhausted
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LocalFleet

pytestmark = pytest.mark.integration

QUOTA = 200_000


def test_partial_files_are_swept_and_the_quota_holds_while_writing(tmp_path: Path) -> None:
    partial = tmp_path / "fleet" / "worker1" / "shards" / ".incoming-killed"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 81_000)  # what a worker killed mid-upload leaves
    small = tmp_path / "small.onnx"
    onnx.save(zoo.mlp(layers=2, width=32, in_features=8, out_features=2), str(small))
    big = tmp_path / "big.onnx"
    onnx.save(zoo.mlp(layers=4, width=256, in_features=64, out_features=8), str(big))
    assert big.stat().st_size > QUOTA > small.stat().st_size
    env = {"EDGESWARM_WORKER_CACHE_MAX_BYTES": str(QUOTA)}
    with LocalFleet(tmp_path / "fleet", workers=1, env=env) as fleet:
        fleet.wait_ready()
        assert not partial.exists()
        assert "partial_shards_swept count=1 bytes=81000" in fleet.log("worker1")
        with Client(fleet.coordinator_address) as client:
            with pytest.raises(ResourceExhausted, match=f"does not fit this worker's cache of {QUOTA} bytes"):
                client.deploy(big, "big", mode="replicas", replicas=1, timeout=60)
            assert not list(partial.parent.glob(".incoming-*"))  # nothing of the refused shard left
            client.deploy(small, "small", mode="replicas", replicas=1, timeout=60)  # the worker still serves
            assert client.is_ready("small")
