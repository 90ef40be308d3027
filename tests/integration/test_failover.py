"""A worker killed with SIGKILL while requests stream: every request still succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.client import Client, StageUnavailable
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.localfleet import wait_until
from tests.helpers import inputs_for, reference

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("layout", ["replicas", "pipeline-with-spares"])
def test_kill_9_during_a_request_stream(make_fleet, model_files: dict[str, Path], layout: str) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=2 if layout == "replicas" else 4)
    path = model_files["transformer"]
    inputs = inputs_for(path, batch=1)
    want = reference(path, inputs)
    with Client(fleet.coordinator_address) as client:
        if layout == "replicas":
            info = client.deploy(path, "enc", mode="replicas", replicas=2, timeout=60)
        else:
            info = client.deploy(path, "enc", mode="pipeline", stages=2, replicas=2, timeout=60)
    ids = {w.id: w.name for w in fleet.status().workers}
    victim = ids[info.stages[-1].workers[0]]

    with Load(fleet.coordinator_address, "enc", inputs, want, lanes=1, timeout=10) as load:
        wait_until(lambda: load.succeeded() >= 40, 60, "requests flowing")
        killed_at = time.monotonic()
        fleet.kill_worker(victim)
        wait_until(lambda: load.succeeded(killed_at) >= 160, 120, "requests after the kill")
    assert load.failures() == []
    wait_until(lambda: victim not in fleet.up_workers(), 5, f"{victim} marked down")


def test_a_restarted_worker_reloads_its_stage_from_its_disk_cache(
    make_fleet, model_files: dict[str, Path]
) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=2)
    path = model_files["cnn"]
    inputs = inputs_for(path, batch=1)
    want = reference(path, inputs)["logits"]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "cnn", mode="pipeline", stages=2, timeout=60)
        np.testing.assert_array_equal(client.infer("cnn", inputs, timeout=10)["logits"], want)
        fleet.kill_worker("worker2")
        wait_until(lambda: "worker2" not in fleet.up_workers(), 5, "worker2 marked down")
        with pytest.raises(StageUnavailable, match="has no live worker"):
            client.infer("cnn", inputs, timeout=10)
        assert not client.is_ready("cnn")
        fleet.start_worker("worker2")
        wait_until(lambda: "worker2" in fleet.up_workers(), 30, "worker2 back up")
        assert client.is_ready("cnn")
        np.testing.assert_array_equal(client.infer("cnn", inputs, timeout=10)["logits"], want)
    log = fleet.log("worker2")
    assert log.count("worker_serving") == 2
    assert log.count("shard_stored") == 1  # the restart loaded the shard from disk, nothing was sent again
    assert log.count("stage_loaded") == 2


def test_redeploying_a_model_under_load_fails_no_request(make_fleet, model_files: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    fleet = make_fleet(workers=3)
    path = model_files["transformer"]
    inputs = inputs_for(path, batch=1)
    want = reference(path, inputs)
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "enc", mode="replicas", replicas=2, timeout=60)
        with Load(fleet.coordinator_address, "enc", inputs, want, lanes=3, timeout=10) as load:
            wait_until(lambda: load.succeeded() > 20, 30, "requests flowing")
            layouts = [
                {"mode": "pipeline", "stages": 3},
                {"mode": "replicas", "replicas": 3},
                {"mode": "pipeline"},
            ]
            for version, layout in enumerate(layouts, start=2):
                info = client.deploy(path, "enc", timeout=60, **layout)  # type: ignore[arg-type]
                assert info.version == str(version)
                deployed_at = time.monotonic()
                wait_until(lambda: load.succeeded(deployed_at) > 10, 30, "requests on the new plan")  # noqa: B023
    assert load.failures() == []
