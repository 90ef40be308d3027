"""Fleet health on loopback: a frozen worker, a drain, a pipeline that loses a stage, a coordinator
restart; each under a steady load whose every result is counted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.client import Client, DeadlineExceeded, ModelStatus
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.localfleet import LocalFleet, wait_until
from tests.helpers import inputs_for, one_long_kernel, reference

pytestmark = pytest.mark.integration

# Short protocol timers, so that re-planning and draining happen within a test's patience.
FAST = {"EDGESWARM_COORDINATOR_REPLAN_GRACE": "1.5", "EDGESWARM_WORKER_DRAIN_NOTICE": "0.5"}


def start_load(fleet: LocalFleet, path: Path, model: str, timeout: float = 10.0, lanes: int = 2) -> Load:
    inputs = inputs_for(path, batch=1)
    load = Load(fleet.coordinator_address, model, inputs, reference(path, inputs), lanes, timeout)
    load.__enter__()
    wait_until(lambda: load.succeeded() >= 10, 30, "requests flowing")
    return load


def more_succeed(load: Load, count: int = 20, timeout: float = 30) -> None:
    since = time.monotonic()
    wait_until(lambda: load.succeeded(since) >= count, timeout, f"{count} more requests to succeed")


def names_to_ids(fleet: LocalFleet) -> dict[str, str]:
    return {w.name: w.id for w in fleet.status().workers}


def placements(fleet: LocalFleet) -> list[ModelStatus]:
    """The models as status shows them, less routing's latency estimates (they move with every request)."""
    return [
        replace(model, stages=tuple(replace(stage, recent_ms=()) for stage in model.stages))
        for model in fleet.status().models
    ]


def model_shape(fleet: LocalFleet, model: str) -> tuple[str, list[int]]:
    status = next(m for m in fleet.status().models if m.name == model)
    return status.version, [len(s.workers) for s in status.stages]


def test_a_frozen_replica_is_routed_around_and_used_again(make_fleet, model_files: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=2)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "enc", mode="replicas", replicas=2, timeout=60)
    load = start_load(fleet, path, "enc")
    try:
        frozen_at = time.monotonic()
        fleet.signal_worker("worker1", signal.SIGSTOP)
        wait_until(lambda: "worker1" not in fleet.up_workers(), 10, "the frozen worker marked down")
        print(f"frozen worker noticed after {time.monotonic() - frozen_at:.2f}s")
        more_succeed(load)
        fleet.signal_worker("worker1", signal.SIGCONT)
        wait_until(lambda: "worker1" in fleet.up_workers(), 15, "the thawed worker back up")
        more_succeed(load)
    finally:
        load.stop()
    assert load.failures() == []
    assert "worker_down" in fleet.log("coordinator") and "health check: DEADLINE_EXCEEDED" in fleet.log(
        "coordinator"
    )


def test_a_replica_that_stops_answering_requests_is_banned_and_they_are_retried_elsewhere(  # type: ignore[no-untyped-def]
    make_fleet, model_files: dict[str, Path]
) -> None:
    # Health probes are rare here, so only the requests can tell that the worker stopped answering.
    env = {"EDGESWARM_COORDINATOR_PROBE_INTERVAL": "600", "EDGESWARM_COORDINATOR_ATTEMPT_FLOOR": "0.5"}
    fleet = make_fleet(workers=2, env=env)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "enc", mode="replicas", replicas=2, timeout=60)
    load = start_load(fleet, path, "enc")
    try:
        fleet.signal_worker("worker1", signal.SIGSTOP)
        wait_until(lambda: "did not answer within" in fleet.log("coordinator"), 20, "a request given up")
        more_succeed(load)
        # Failed for routing (left out of routes, with a growing ban), but not lost: no re-plan.
        states = lambda: {w.name: w.state for w in fleet.status().workers}  # noqa: E731
        wait_until(lambda: states()["worker1"] == "banned", 10, "the stuck worker shown banned")
    finally:
        fleet.signal_worker("worker1", signal.SIGCONT)
        load.stop()
    assert load.failures() == []


def test_a_pool_stuck_in_kernels_says_not_serving_and_shutdown_does_not_wait_for_it(  # type: ignore[no-untyped-def]
    make_fleet, tmp_path: Path
) -> None:
    fleet = make_fleet(workers=1, env={"EDGESWARM_WORKER_CONCURRENCY": "1"})
    path = tmp_path / "long.onnx"
    onnx.save(one_long_kernel(6144), str(path))  # one MatMul of 464 GFLOP: many seconds on one thread
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "long", mode="replicas", timeout=60)
        with pytest.raises(DeadlineExceeded):
            client.infer("long", {"x": np.ones(1, np.float32)}, timeout=0.5)
    wait_until(lambda: "pool_saturated" in fleet.log("worker1"), 20, "the worker to see its pool stuck")
    wait_until(
        lambda: "health NOT_SERVING" in fleet.log("coordinator"), 20, "the coordinator to route around it"
    )
    fleet.signal_worker("worker1", signal.SIGTERM)
    assert fleet.workers["worker1"].wait(timeout=30) == 0
    assert "worker_exiting stuck_runs=1" in fleet.log("worker1")


@pytest.mark.parametrize("how", ["sigterm", "command"])
def test_a_drained_worker_fails_no_request(make_fleet, model_files: dict[str, Path], how: str) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=3, env=FAST)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        info = client.deploy(path, "enc", mode="pipeline", stages=1, replicas=2, timeout=60)
    ids = {v: k for k, v in names_to_ids(fleet).items()}
    victim = ids[info.stages[0].workers[0]]
    load = start_load(fleet, path, "enc", lanes=3)
    try:
        if how == "sigterm":
            fleet.signal_worker(victim, signal.SIGTERM)
        else:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgeswarm",
                    "drain",
                    victim,
                    "--coordinator",
                    fleet.coordinator_address,
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            assert f"draining worker {victim}" in done.stdout
        assert fleet.workers[victim].wait(timeout=30) == 0
        more_succeed(load)
    finally:
        load.stop()
    assert load.failures() == []
    log = fleet.log(victim)
    assert "worker_draining" in log and ("SIGTERM" in log if how == "sigterm" else "edgeswarm drain" in log)


def test_a_pipeline_that_loses_a_stage_is_replanned_onto_the_rest(
    make_fleet, model_files: dict[str, Path]
) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=3, env=FAST)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "enc", mode="pipeline", stages=3, timeout=60)
    assert model_shape(fleet, "enc") == ("1", [1, 1, 1])
    load = start_load(fleet, path, "enc", timeout=5.0)
    try:
        killed_at = time.monotonic()
        fleet.kill_worker("worker2")
        wait_until(lambda: model_shape(fleet, "enc")[1] == [1, 1], 30, "a 2-stage plan on the 2 workers left")
        print(f"re-planned {time.monotonic() - killed_at:.2f}s after the kill")
        more_succeed(load)
        fleet.start_worker("worker2")
        wait_until(lambda: model_shape(fleet, "enc")[1] == [1, 1, 1], 60, "3 stages again with worker2 back")
        more_succeed(load)
    finally:
        load.stop()
    # During the gap requests may fail, but only as UNAVAILABLE naming the stage, and never past the deadline.
    for failure in load.failures():
        assert failure.error.startswith("StageUnavailable"), failure.error
        assert failure.seconds < 5.0 + 1.0
    with Client(fleet.coordinator_address) as client:
        inputs = inputs_for(path, batch=2, seed=3)
        np.testing.assert_array_equal(
            client.infer("enc", inputs, timeout=10)["hidden"], reference(path, inputs)["hidden"]
        )


def test_a_restarted_coordinator_serves_again_without_a_redeploy(
    make_fleet, model_files: dict[str, Path]
) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=2)
    path = model_files["cnn"]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "cnn", mode="pipeline", stages=2, timeout=60)
    before = placements(fleet)
    load = start_load(fleet, path, "cnn", timeout=20.0)
    try:
        fleet.kill_coordinator()
        fleet.start_coordinator()
        more_succeed(load, timeout=40)
    finally:
        load.stop()
    assert load.failures() == []
    assert placements(fleet) == before
    assert "model_recovered model=cnn version=1" in fleet.log("coordinator")
