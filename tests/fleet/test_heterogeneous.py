"""A heterogeneous fleet: workers whose CPU is throttled to different shares by cgroup quotas. The
planner must measure the difference, give the slow worker less work, and predict the throughput
that the deployed plan then delivers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.coordinator.planning.segments import segments_of
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.network import Network
from edgeswarm.dev.netns.swarm import NetFleet, pipeline_encoder
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference

pytestmark = [pytest.mark.fleet, pytest.mark.measures]

# CPU shares of the three workers: 1:2:4, together about half of this 2-core machine, so that the
# coordinator and the load generator do not take their time.
SHARES = {"worker1": 0.6, "worker2": 0.3, "worker3": 0.15}
WINDOWS = 3
WINDOW_S = 5.0


def test_the_plan_follows_measured_speed_and_predicts_throughput(network: Network, tmp_path: Path) -> None:
    # No worker may hold more than 60% of the weights: the model must be a pipeline.
    model, path, env = pipeline_encoder(tmp_path)
    fleet = NetFleet(network, tmp_path / "fleet", workers=3, mqtt=False, env=env)
    for name, share in SHARES.items():
        fleet.worker_hosts[name].throttle_cpu(share)
    fleet.start()
    fleet.wait_ready()
    names = {w.id: w.name for w in fleet.status().workers}
    with fleet.client() as client:
        info = client.deploy(path, "enc", timeout=300)
    assert info.plan is not None
    chosen = info.plan["chosen"]
    assert chosen["kind"] == "pipeline", chosen
    # Work is the estimated FLOPs of the segments a worker runs (the coordinator cut the same segments).
    flops = segments_of(model, sample_inputs(model, batch=1)).flops
    work = {
        names[s["worker_id"]]: sum(flops[s["first_segment"] : s["last_segment"] + 1])
        for s in chosen["pipelines"][0]["stages"]
    }
    print(f"\nGFLOP per worker: { {w: round(f / 1e9, 3) for w, f in work.items()} }; "
          f"predicted {chosen['predicted_rps']:.2f} req/s")  # fmt: skip
    assert work.get("worker3", 0) < work["worker1"]

    inputs = sample_inputs(model, batch=1)
    lanes = 2 * len(chosen["pipelines"][0]["stages"])
    with Load(
        fleet.coordinator_address,
        "enc",
        inputs,
        reference(path, inputs),
        lanes=lanes,
        timeout=60,
        credentials=fleet.credentials,
    ) as load:
        wait_until(lambda: load.succeeded() >= 2 * lanes, 60, "the pipeline to fill")
        start = time.monotonic()
        end = start + WINDOWS * WINDOW_S
        wait_until(lambda: time.monotonic() >= end, end - start + 1, "the measuring windows")
        finished = [r.start + r.seconds for r in load.snapshot() if not r.error]
    assert load.failures() == []
    rates = [
        sum(1 for t in finished if start + i * WINDOW_S <= t < start + (i + 1) * WINDOW_S) / WINDOW_S
        for i in range(WINDOWS)
    ]
    # Other processes on the machine only ever slow the fleet down, so the best window is the closest
    # reading of what the plan delivers (as timeit takes the fastest run).
    measured = max(rates)
    ratio = measured / chosen["predicted_rps"]
    print(f"measured {measured:.2f} req/s = {ratio:.2f}x predicted (windows: {[round(r, 1) for r in rates]})")
    # The target is within 15%: 20 runs read 0.85x-1.08x (README, Performance). The ratio is printed
    # rather than made the pass/fail line of a timed test on a shared 2-core machine; asserted is
    # that the prediction is not far off, as it was (0.58x) before a stage's call overhead was
    # measured, and (0.75x-0.79x) while a short profiling window could start on unused CPU quota.
    assert 0.6 <= ratio <= 1.4


def stage_bytes(fleet: NetFleet, model: str) -> tuple[str, dict[str, int]]:
    """The model's plan version and the weight bytes of the stages each worker (by name) holds."""
    status = fleet.status()
    names = {w.id: w.name for w in status.workers}
    entry = next(m for m in status.models if m.name == model)
    held: dict[str, int] = {}
    for stage in entry.stages:
        for worker in stage.workers:
            held[names[worker]] = held.get(names[worker], 0) + stage.size
    return entry.version, held


def test_a_worker_slowed_after_the_deploy_is_measured_again_and_given_less_work(
    network: Network, tmp_path: Path
) -> None:
    model, path, env = pipeline_encoder(tmp_path)
    env = {
        **env,
        "EDGESWARM_WORKER_RECALIBRATE_INTERVAL": "2",
        "EDGESWARM_COORDINATOR_DESCRIBE_INTERVAL": "0.5",
    }
    fleet = NetFleet(network, tmp_path / "fleet", workers=3, mqtt=False, env=env)
    fleet.start()
    fleet.wait_ready()
    with fleet.client() as client:
        client.deploy(path, "enc", timeout=300)
    version, before = stage_bytes(fleet, "enc")
    busiest = max(before, key=lambda name: before[name])
    fleet.worker_hosts[busiest].throttle_cpu(0.1)
    print(f"\nplan {version}: weight bytes per worker {before}; capping {busiest} at 10% of a CPU")

    def lighter() -> bool:
        now, held = stage_bytes(fleet, "enc")
        return now != version and held.get(busiest, 0) < before[busiest]

    capped = time.monotonic()
    wait_until(lighter, 120, f"a new plan giving {busiest} less work")
    version, after = stage_bytes(fleet, "enc")
    print(f"plan {version}, {time.monotonic() - capped:.1f} s after the cap: weight bytes per worker {after}")
    # The re-plan was for a drift of the figures (the slowed worker's, or another's: on one machine,
    # capping a worker leaves the others more CPU), not for a worker joining or leaving.
    replans = [line for line in fleet.log("coordinator").splitlines() if "replanning model=enc" in line]
    print("\n".join(replans))
    assert replans and all("figures changed" in line for line in replans)
    inputs = sample_inputs(model, batch=1)
    with fleet.client() as client:
        got = client.infer("enc", inputs, timeout=60)
    want = reference(path, inputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)
