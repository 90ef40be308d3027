"""The swarm across network namespaces: every fault of the chaos run, under load, fails no request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.dev import zoo
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.mosquitto import mosquitto_binary
from edgeswarm.dev.netns import chaos
from edgeswarm.dev.netns.network import Network
from edgeswarm.dev.netns.swarm import NetFleet
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference

pytestmark = pytest.mark.fleet


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "encoder.onnx"
    onnx.save(zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=16), str(path))
    return path


@pytest.fixture
def replicas_fleet(network: Network, tmp_path: Path) -> Iterator[NetFleet]:
    if mosquitto_binary() is None:
        from tests.helpers import skip_or_fail

        skip_or_fail("mosquitto is not installed")
    fleet = NetFleet(network, tmp_path / "fleet", workers=2)
    fleet.start()
    fleet.wait_ready()
    yield fleet


def test_every_fault_fails_no_request(replicas_fleet: NetFleet, model_path: Path) -> None:
    fleet = replicas_fleet
    chaos.deploy_replicas(fleet, str(model_path), "enc")
    inputs = sample_inputs(onnx.load(str(model_path)), batch=1)
    outcomes = []
    with Load(
        fleet.coordinator_address,
        "enc",
        inputs,
        reference(model_path, inputs),
        lanes=2,
        timeout=20,
        credentials=fleet.credentials,
    ) as load:
        for scenario in chaos.SCENARIOS:
            # Shorter windows than bench/chaos.py's: enough requests to count, in a third less time.
            outcomes.append(chaos.run(fleet, load, scenario, "worker1", hold=1.5, before=1.0, after=1.0))
    print("\n" + chaos.table(outcomes))
    for outcome in outcomes:
        assert outcome.failed == 0, (outcome.scenario, outcome.errors)
        assert outcome.succeeded > 20


def test_a_pipeline_without_spares_is_replanned_when_a_worker_dies(
    network: Network, tmp_path: Path, model_path: Path
) -> None:
    fleet = NetFleet(
        network, tmp_path / "fleet", workers=3, mqtt=False, env={"EDGESWARM_COORDINATOR_REPLAN_GRACE": "2"}
    )
    fleet.start()
    fleet.wait_ready()
    with fleet.client() as client:
        client.deploy(model_path, "enc", mode="pipeline", stages=3, timeout=60)
    inputs = sample_inputs(onnx.load(str(model_path)), batch=1)
    want = reference(model_path, inputs)

    def stages() -> int:
        return len(next(m for m in fleet.status().models if m.name == "enc").stages)

    with Load(
        fleet.coordinator_address, "enc", inputs, want, lanes=2, timeout=5, credentials=fleet.credentials
    ) as load:
        wait_until(lambda: load.succeeded() >= 10, 30, "requests flowing")
        fleet.worker_hosts["worker2"].kill()
        wait_until(lambda: stages() == 2, 30, "a 2-stage plan on the workers left")
        since = time.monotonic()
        wait_until(lambda: load.succeeded(since) >= 20, 30, "requests on the new plan")
    # In the gap, requests fail fast and say which stage has no worker; none outlives its deadline.
    for failure in load.failures():
        assert "StageUnavailable" in failure.error and "has no live worker" in failure.error, failure.error
        assert failure.seconds < 6.0
    with fleet.client() as client:
        got = client.infer("enc", inputs, timeout=10)
    assert all(np.array_equal(got[k], want[k]) for k in want)
