"""Dynamic batching at the entry stage: concurrent requests run as one ONNX Runtime call, and each
gets the outputs of its own inputs."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.client import AsyncClient
from edgeswarm.dev.localfleet import free_port
from tests.helpers import inputs_for, reference

pytestmark = pytest.mark.integration


def batches_run(metrics: str) -> float:
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("edgeswarm_batch_requests_count")
    )


@pytest.mark.parametrize("layout", [{"mode": "replicas", "replicas": 1}, {"mode": "pipeline", "stages": 2}])
def test_concurrent_requests_are_batched_and_each_gets_its_own_outputs(  # type: ignore[no-untyped-def]
    make_fleet, model_files: dict[str, Path], layout: dict[str, object]
) -> None:
    metrics = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    fleet = make_fleet(workers=0)
    for i, address in enumerate(metrics):
        fleet.worker_args = ("--metrics", address)
        fleet.start_worker(f"worker{i + 1}")
    fleet.wait_ready(workers=2)
    path = model_files["transformer"]
    requests = [inputs_for(path, batch=1, seed=seed) for seed in range(8)]

    async def run() -> list[dict[str, np.ndarray]]:
        async with AsyncClient(fleet.coordinator_address) as client:
            await client.deploy(path, "enc", timeout=60, batch_max=8, batch_delay_ms=200, **layout)  # type: ignore[arg-type]
            return list(await asyncio.gather(*(client.infer("enc", r, timeout=30) for r in requests)))

    results = asyncio.run(run())
    exact = 0
    for got, inputs in zip(results, requests, strict=True):
        want = reference(path, inputs)["hidden"]
        np.testing.assert_allclose(got["hidden"], want, rtol=1e-4, atol=1e-5)
        exact += int(np.array_equal(got["hidden"], want))
    print(f"{exact} of {len(requests)} batched results equal the unbatched ones bit for bit")
    assert sum(batches_run(m) for m in metrics) >= 1
