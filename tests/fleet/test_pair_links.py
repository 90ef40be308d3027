"""Links between workers are measured and planned for: two workers whose link to each other is slow
are not made pipeline neighbours, although each one's link to the coordinator is fast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.dev.netns.network import Network
from edgeswarm.dev.netns.swarm import NetFleet, pipeline_encoder
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference

pytestmark = [pytest.mark.fleet, pytest.mark.measures]

# 4 Mbit/s: the encoder's 98 KB boundary then takes ~0.2 s, ten times a stage's compute.
SLOW_KBIT = 4000


# 8: every pair is timed before planning; 0: as in a fleet larger than `pair_workers`, only the pairs a
# plan makes neighbours are timed, then the model is planned again with what they showed.
@pytest.mark.parametrize("pair_workers", ["8", "0"])
def test_workers_with_a_slow_link_between_them_are_not_neighbours(
    network: Network, tmp_path: Path, pair_workers: str
) -> None:
    # No worker holds the whole model, so it must be a pipeline; any two workers together hold it.
    model, path, env = pipeline_encoder(tmp_path)
    env = {**env, "EDGESWARM_COORDINATOR_PAIR_WORKERS": pair_workers}
    fleet = NetFleet(network, tmp_path / "fleet", workers=3, mqtt=False, env=env)
    hosts = fleet.worker_hosts
    # worker1 is the fastest, so a planner blind to links between workers would put it in the
    # pipeline; but its links to both others are slow, and only worker2 -> worker3 (or back) is fast.
    hosts["worker2"].throttle_cpu(0.5)
    hosts["worker3"].throttle_cpu(0.5)
    hosts["worker1"].slow_between(hosts["worker2"], SLOW_KBIT)
    hosts["worker1"].slow_between(hosts["worker3"], SLOW_KBIT)
    fleet.start()
    fleet.wait_ready()
    with fleet.client() as client:
        info = client.deploy(path, "enc", timeout=300)
        inputs = sample_inputs(model, batch=1)
        got = client.infer("enc", inputs, timeout=60)
    assert info.plan is not None
    chosen = info.plan["chosen"]
    routes = [[stage["worker"] for stage in p["stages"]] for p in chosen["pipelines"]]
    print(f"\nlinks {json.dumps(info.plan['links'])}")
    print(f"chosen {chosen['kind']}: {routes}, predicted {chosen['predicted_rps']:.1f} req/s")
    links = {tuple(sorted(link["between"])): link for link in info.plan["links"]}
    for pair in [("worker1", "worker2"), ("worker1", "worker3")]:
        assert links[pair]["bandwidth_mbps"] < 1.0, links  # 4 Mbit/s is 0.5 MB/s
    assert links[("worker2", "worker3")]["bandwidth_mbps"] > 5.0, links
    assert chosen["kind"] == "pipeline" and sorted(routes[0]) == ["worker2", "worker3"], routes
    # Without every pair timed first, the first plan put the fastest worker in, over its slow links.
    again = fleet.log("coordinator").count("planning_again model=enc")
    assert again >= 1 if pair_workers == "0" else again == 0
    want = reference(path, inputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)
