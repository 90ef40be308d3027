"""Deploys chosen by the planner from measured figures, through real processes on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from rich.console import Console

from edgeswarm.cli.tables import print_status
from edgeswarm.client import Client, PlacementError
from edgeswarm.dev import zoo
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.localfleet import wait_until
from edgeswarm.graph.costs import tensor_nbytes
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "edgeswarm"]


def check_bit_exact(client: Client, name: str, path: Path) -> None:
    inputs = sample_inputs(onnx.load(str(path)), batch=2, seed=4)
    got, want = client.infer(name, inputs, timeout=30), reference(path, inputs)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_a_model_that_fits_everywhere_on_equal_workers_is_deployed_as_replicas(  # type: ignore[no-untyped-def]
    make_fleet, model_files: dict[str, Path]
) -> None:
    fleet = make_fleet(workers=3)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        info = client.deploy(path, "enc", timeout=120)
        assert info.mode == "auto" and info.plan is not None
        assert info.plan["chosen"]["kind"] == "replicas", json.dumps(info.plan, indent=1)
        check_bit_exact(client, "enc", path)
        report = client.status()
    model = next(m for m in report.models if m.name == "enc")
    assert model.objective == "throughput" and model.predicted_rps > 0
    assert all(w.calibration_gflops > 0 and w.rtt_ms > 0 for w in report.workers)
    # The link between every pair of the three, as timed for the plan, is in the status too.
    assert len(report.links) == 3
    assert all(link.reachable and link.bandwidth_mbps > 0 for link in report.links)
    shown = io.StringIO()
    print_status(report, Console(file=shown, width=200))
    assert "links between workers" in shown.getvalue()
    assert len(re.findall(r"worker\d - worker\d", shown.getvalue())) == 3
    planned = subprocess.run(
        [*CLI, "plan", str(path), "--json", "--coordinator", fleet.coordinator_address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["chosen"]["kind"] == "replicas"


def test_a_model_over_every_workers_memory_limit_is_deployed_as_a_pipeline_that_fits(  # type: ignore[no-untyped-def]
    make_fleet, model_files: dict[str, Path]
) -> None:
    path = model_files["transformer"]
    weights = sum(tensor_nbytes(i) for i in onnx.load(str(path)).graph.initializer)
    limit = int(weights * 0.6)
    fleet = make_fleet(workers=3, env={"EDGESWARM_WORKER_MEMORY_LIMIT": str(limit)})
    with Client(fleet.coordinator_address) as client:
        info = client.deploy(path, "enc", timeout=120)
        assert info.plan is not None
        chosen = info.plan["chosen"]
        assert chosen["kind"] in ("pipeline", "hybrid")
        assert all(len(p["stages"]) >= 2 for p in chosen["pipelines"])
        # Every pair of workers timed its link: the planner knew which could be neighbours.
        links = info.plan["links"]
        assert sorted(tuple(sorted(link["between"])) for link in links) == [
            ("worker1", "worker2"),
            ("worker1", "worker3"),
            ("worker2", "worker3"),
        ]
        assert all(link["rtt_ms"] is not None and link["bandwidth_mbps"] > 0 for link in links)
        # A stage's file is its weights plus the graph's few kilobytes.
        assert all(s.size < limit + 65536 for s in info.stages)
        check_bit_exact(client, "enc", path)
        # Asked for as a whole model on one worker, it does not fit that worker's memory_limit.
        with pytest.raises(
            PlacementError, match=rf"over its memory limit of {limit} bytes; deploy it as more"
        ):
            client.deploy(path, "enc-whole", mode="replicas", replicas=1, timeout=120)
        assert not client.is_ready("enc-whole") and client.is_ready("enc")
    # A model bigger than the memory of all three workers together is refused, naming why.
    big = path.parent / "big.onnx"
    onnx.save(zoo.transformer_encoder(layers=2, d_model=256, heads=4, d_ff=1024, seq=8), str(big))
    with Client(fleet.coordinator_address) as client, pytest.raises(PlacementError, match="no layout holds"):
        client.deploy(big, "too-big", timeout=120)


def test_a_worker_joining_triggers_a_new_plan_that_fails_no_request(  # type: ignore[no-untyped-def]
    make_fleet, model_files: dict[str, Path]
) -> None:
    fleet = make_fleet(workers=2)
    path = model_files["transformer"]
    with Client(fleet.coordinator_address) as client:
        info = client.deploy(path, "enc", timeout=120)
    assert info.plan is not None and info.plan["chosen"]["kind"] == "replicas"

    def placed() -> tuple[str, int]:
        model = next(m for m in fleet.status().models if m.name == "enc")
        return model.version, len({w for s in model.stages for w in s.workers})

    assert placed() == ("1", 2)
    inputs = sample_inputs(onnx.load(str(path)), batch=1)
    with Load(fleet.coordinator_address, "enc", inputs, reference(path, inputs), lanes=2) as load:
        wait_until(lambda: load.succeeded() >= 10, 30, "requests flowing")
        fleet.start_worker("worker3")
        wait_until(lambda: placed() == ("2", 3), 60, "a new plan on the three workers")
        since = time.monotonic()
        wait_until(lambda: load.succeeded(since) >= 10, 30, "requests on the new plan")
    assert load.failures() == []
    assert "replanning model=enc" in fleet.log("coordinator")
