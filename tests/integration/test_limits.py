"""Limits a worker keeps whatever its caller asks: a Profile ends at the worker's own time limit."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.dev.reference import reference
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import runaway_loop

pytestmark = pytest.mark.integration


def test_a_profile_with_no_deadline_ends_at_the_workers_limit_and_it_keeps_serving(  # type: ignore[no-untyped-def]
    make_fleet, tmp_path: Path
) -> None:
    fleet = make_fleet(workers=1, env={"EDGESWARM_WORKER_PROFILE_LIMIT": "2"})
    runaway, mlp = tmp_path / "runaway.onnx", tmp_path / "mlp.onnx"
    onnx.save(runaway_loop(), str(runaway))
    onnx.save(zoo.mlp(layers=2, width=16, in_features=4, out_features=2), str(mlp))
    with Client(fleet.coordinator_address) as client:
        info = client.deploy(runaway, "runaway", mode="replicas", timeout=60)
        client.deploy(mlp, "mlp", mode="replicas", timeout=60)
        worker = client.status().workers[0]
        request = worker_pb2.ProfileRequest(
            shards=[info.stages[0].sha256],
            inputs=codec.encode_all({"x": np.zeros(1, np.float32)}),
            repeats=50,
        )
        start = time.monotonic()
        with grpc.insecure_channel(worker.address) as channel, pytest.raises(grpc.RpcError) as stopped:
            worker_pb2_grpc.WorkerStub(channel).Profile(request)  # no deadline of its own
        took = time.monotonic() - start
        assert stopped.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, stopped.value.details()
        assert "profiling was stopped at its time limit (2 s)" in (stopped.value.details() or "")
        print(f"a runaway Profile with no deadline answered after {took:.2f} s (limit 2 s)")
        inputs = sample_inputs(onnx.load(str(mlp)), batch=2)
        got = client.infer("mlp", inputs, timeout=30)
    want = reference(mlp, inputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)
