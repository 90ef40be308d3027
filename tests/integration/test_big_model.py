"""A model over protobuf's 2 GiB limit, in external data, deployed as a 4-stage pipeline on workers
whose memory_limit lets none hold more than 30% of it: bit-exact, and neither the CLI nor the
coordinator grows by more than 256 MB while the model goes through them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.client import Client
from edgeswarm.dev.bigmodel import WIDTH, deploy_measured, memory_of, write_big_mlp
from edgeswarm.dev.localfleet import LocalFleet, wait_until
from edgeswarm.dev.reference import reference

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1024 * 1024
GROWTH_BOUND = 256 * MIB


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    path = tmp_path_factory.mktemp("big") / "big.onnx"
    size = write_big_mlp(path)
    # Over what one protobuf message may hold (2**31 - 1 bytes); the weights are all in big.data.
    assert size >= 2**31 and path.stat().st_size < MIB
    yield path, size
    path.with_suffix(".data").unlink()


def test_a_model_over_2_gib_runs_as_a_4_stage_pipeline_bit_exact_with_flat_memory(
    big_model: tuple[Path, int], tmp_path: Path
) -> None:
    path, size = big_model
    limit = int(0.3 * size)
    env = {"EDGESWARM_WORKER_MEMORY_LIMIT": str(limit), "EDGESWARM_COORDINATOR_DESCRIBE_INTERVAL": "1"}
    with LocalFleet(tmp_path / "fleet", workers=4, env=env) as fleet:
        fleet.wait_ready(timeout=120)
        assert fleet.coordinator is not None
        coordinator = fleet.coordinator.pid
        before = memory_of(coordinator)
        args = ("--name", "big", "--mode", "pipeline", "--stages", "4")
        cli = deploy_measured(path, fleet.coordinator_address, *args)
        assert cli["code"] == 0
        after = memory_of(coordinator)
        coordinator_growth = after["VmHWM"] - before["VmRSS"]
        cli_growth = cli["hwm_after"] - cli["rss_before"]
        print(
            f"\nmodel {size / MIB:.0f} MiB in 4 stages, worker memory_limit {limit / MIB:.0f} MiB: "
            f"coordinator RSS {before['VmRSS'] / MIB:.0f} MiB before, peak {after['VmHWM'] / MIB:.0f} MiB "
            f"(+{coordinator_growth / MIB:.0f}); CLI RSS {cli['rss_before'] / MIB:.0f} MiB before, peak "
            f"{cli['hwm_after'] / MIB:.0f} MiB (+{cli_growth / MIB:.0f})"
        )
        assert coordinator_growth < GROWTH_BOUND
        assert cli_growth < GROWTH_BOUND

        x = np.random.default_rng(3).standard_normal((2, WIDTH), dtype=np.float32)
        with Client(fleet.coordinator_address) as client:
            status = client.status()
            (model,) = status.models
            assert len(model.stages) == 4 and all(stage.size < limit for stage in model.stages)
            assert len({w for s in model.stages for w in s.workers}) == 4
            got = client.infer("big", {"x": x}, timeout=120)["y"]
            # Re-read every second here: what each stage took is in the workers' next descriptions.
            wait_until(lambda: all(w.memory_used > 0 for w in client.status().workers), 30, "memory figures")
            workers = client.status().workers
        for w in workers:  # what each worker's stage took as it loaded, as the planner counts it
            print(f"{w.name}: stage {w.loaded_stages}, resident {w.memory_used / MIB:.0f} MiB after load")
        np.testing.assert_array_equal(got, reference(path, {"x": x})["y"])
        assert not any((fleet.workdir / "coordinator-state" / "store" / "incoming").iterdir())
