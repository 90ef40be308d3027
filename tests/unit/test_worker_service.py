"""The Worker service built without a server: a shard stored in chunks, loaded, run and unloaded,
and the plan manifest it keeps for a restarted coordinator, all through its handler methods."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.deploying.manifests import manifest_of
from edgeswarm.coordinator.worker_client import chunks
from edgeswarm.dev import zoo
from edgeswarm.errors import InvalidRequest, ResourceExhausted, StageUnavailable
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.graph.signature import signature_of
from edgeswarm.plans import Mode, Plan, StageSpec
from edgeswarm.worker.cache import ShardStore
from edgeswarm.worker.peers import Peers
from edgeswarm.worker.runtime import StageRuntime
from edgeswarm.worker.service import WorkerService
from tests.helpers import run_whole


class Context:
    """What the handlers read of a grpc.aio ServicerContext."""

    def time_remaining(self) -> float:
        return 10.0


@pytest.fixture
def service(tmp_path: Path) -> Iterator[WorkerService]:
    runtime = StageRuntime(threads=1)
    yield WorkerService("w" * 32, "unit", "fleet", ShardStore(tmp_path / "shards"), runtime, Peers(1 << 20))
    runtime.close()


async def test_a_shard_is_stored_loaded_run_and_unloaded(service: WorkerService) -> None:
    model = zoo.mlp(layers=2, width=16, in_features=8, out_features=2)
    data = model.SerializeToString()
    sha = hashlib.sha256(data).hexdigest()
    context = Context()
    stored = await service.PutShard(chunks(sha, data), context)  # type: ignore[arg-type]
    assert stored.sha256 == sha and not stored.already_cached
    again = await service.PutShard(chunks(sha, data), context)  # type: ignore[arg-type]
    assert again.already_cached

    spec = StageSpec(0, sha, len(data), ("x",), ("y",), ("y",), (service.worker_id,))
    plan = Plan("mlp", 3, Mode.REPLICAS, signature_of(model), (spec,))
    request = worker_pb2.LoadStageRequest(sha256=sha, plan=manifest_of(plan))
    loaded = await service.LoadStage(request, context)  # type: ignore[arg-type]
    assert list(loaded.inputs) == ["x"] and list(loaded.outputs) == ["y"]
    described = await service.Describe(worker_pb2.DescribeRequest(), context)  # type: ignore[arg-type]
    assert list(described.loaded_stages) == [sha] and described.plans[0].version == 3

    inputs = sample_inputs(model, batch=3)
    run = worker_pb2.StageRequest(
        request_id="r1", tensors=codec.encode_all(inputs), route=[worker_pb2.Hop(stage=sha, carry=["y"])]
    )
    answer = await service.RunStage(run, context)  # type: ignore[arg-type]
    assert isinstance(answer, worker_pb2.StageResponse)
    np.testing.assert_array_equal(codec.decode_all(answer.tensors)["y"], run_whole(model, inputs)["y"])

    await service.UnloadStage(worker_pb2.UnloadStageRequest(sha256=sha), context)  # type: ignore[arg-type]
    described = await service.Describe(worker_pb2.DescribeRequest(), context)  # type: ignore[arg-type]
    assert not described.loaded_stages and not described.plans  # no stage of the plan is left here
    with pytest.raises(StageUnavailable, match="is not loaded"):
        await service.RunStage(run, context)  # type: ignore[arg-type]


async def test_a_shard_whose_bytes_do_not_match_its_digest_is_not_kept(service: WorkerService) -> None:
    data = zoo.mlp(layers=1, width=4, in_features=2, out_features=1).SerializeToString()
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(InvalidRequest):
        await service.PutShard(chunks(wrong, data), Context())  # type: ignore[arg-type]
    assert not service.store.has(wrong) and not list(service.store.root.iterdir())


async def test_a_shard_over_the_cache_quota_is_refused_before_it_is_written(service: WorkerService) -> None:
    data = zoo.mlp(layers=2, width=32, in_features=8, out_features=2).SerializeToString()
    service.cache_max_bytes = len(data) - 1
    with pytest.raises(ResourceExhausted, match=f"a shard of {len(data)} bytes does not fit"):
        await service.PutShard(chunks(hashlib.sha256(data).hexdigest(), data), Context())  # type: ignore[arg-type]
    assert not list(service.store.root.iterdir())
