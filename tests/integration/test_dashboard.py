"""The shipped Grafana dashboard against a real Prometheus scraping a coordinator and two workers:
after some traffic, every PromQL expression in it returns data, and Triton's metric names count
exactly the requests sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.client import Client, InvalidRequest
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LocalFleet, free_port, wait_until
from edgeswarm.dev.prometheus import Prometheus, prometheus_unavailable
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.integration

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "ansible/roles/edgeswarm_grafana/files/edgeswarm-dashboard.json"
)
REQUESTS = 30
TRAFFIC_S = 4.0


def expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in document["panels"] for t in p.get("targets", [])]


def total(prometheus: Prometheus, expr: str) -> float:
    return sum(float(sample["value"][1]) for sample in prometheus.query(expr))


def test_every_dashboard_query_returns_data_after_traffic(tmp_path: Path) -> None:
    if (reason := prometheus_unavailable()) is not None:
        skip_or_fail(reason)
    assert len(expressions()) >= 12
    metrics = {name: f"127.0.0.1:{free_port()}" for name in ("coordinator", "worker1", "worker2")}
    model = zoo.mlp(layers=4, width=32, in_features=16, out_features=4)
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    inputs = sample_inputs(model, batch=3)
    with LocalFleet(
        tmp_path / "fleet", workers=0, coordinator_args=("--metrics", metrics["coordinator"])
    ) as fleet:
        for name in ("worker1", "worker2"):
            fleet.start_worker(name, "--metrics", metrics[name])
        fleet.wait_ready(workers=2)
        with (
            Prometheus(list(metrics.values()), workdir=tmp_path) as prometheus,
            Client(fleet.coordinator_address) as client,
        ):
            wait_until(prometheus.targets_up, 30, "prometheus to scrape the three processes")
            client.deploy(path, "dash", timeout=120)  # planned: links are timed too
            # Traffic across several scrapes, so that rates have two samples that differ.
            sent, until = 0, time.monotonic() + TRAFFIC_S
            while sent < REQUESTS or time.monotonic() < until:
                client.infer("dash", inputs, timeout=10)
                sent += 1
            with pytest.raises(InvalidRequest):
                client.infer("dash", {"x": inputs["x"].astype(np.float64)}, timeout=10)
            counted = 'sum(nv_inference_request_success{model="dash"})'
            wait_until(lambda: total(prometheus, counted) == sent, 30, f"{sent} successes scraped")
            assert total(prometheus, 'sum(nv_inference_request_failure{model="dash"})') == 1
            assert total(prometheus, 'sum(nv_inference_count{model="dash"})') == 3 * sent  # batch 3
            assert total(prometheus, 'sum(nv_inference_exec_count{model="dash"})') == sent

            def empty() -> list[str]:
                return [expr for expr in expressions() if not prometheus.query(expr)]

            try:
                wait_until(lambda: not empty(), 20, "every dashboard query to return data")
            except TimeoutError:
                pytest.fail(f"no data for: {empty()}")
