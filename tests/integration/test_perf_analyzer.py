"""Triton's perf_analyzer, unmodified, measures the coordinator: the built-in encoder as replicas
and as a 2-stage pipeline. Its server-side section is filled from the coordinator's statistics."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edgeswarm.client import Client
from edgeswarm.dev import perf_analyzer, zoo
from tests.helpers import skip_or_fail

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("layout", "shape"), [("replicas", {"replicas": 2}), ("pipeline", {"stages": 2})])
def test_perf_analyzer_measures_the_swarm(
    make_fleet: object, tmp_path: Path, layout: str, shape: dict[str, int]
) -> None:
    if perf_analyzer.binary() is None:
        pytest.skip("the tritonclient wheel has no perf_analyzer for this platform")
    if (reason := perf_analyzer.unavailable()) is not None:
        skip_or_fail(reason)
    fleet = make_fleet(workers=2)  # type: ignore[operator]
    path = tmp_path / "encoder.onnx"
    onnx.save(zoo.builtin_model(), str(path))
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "encoder", mode=layout, timeout=120, **shape)
        figures, report = perf_analyzer.run(fleet.coordinator_address, "encoder", concurrency=2)
        [served] = [m for m in client.status().models if m.name == "encoder"]
    print(report)
    assert figures.concurrency == 2 and figures.inferences_per_s > 0
    assert 0 < figures.p50_ms <= figures.p99_ms
    assert "Server:" in report and "Successful request count" in report  # it read our statistics
    assert served.mode == layout
