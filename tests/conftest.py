from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from edgeswarm.dev.localfleet import LocalFleet, free_port
from tests.helpers import MODELS


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, build in MODELS.items():
        paths[name] = folder / f"{name}.onnx"
        onnx.save(build(), str(paths[name]))
    return paths


@pytest.fixture
def make_fleet(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Starts LocalFleets that are stopped, and their logs shown, when the test ends."""
    fleets: list[LocalFleet] = []

    def make(workers: int = 3, **kwargs: object) -> LocalFleet:
        fleet = LocalFleet(tmp_path / f"fleet{len(fleets)}", workers=workers, **kwargs)  # type: ignore[arg-type]
        fleets.append(fleet)
        fleet.start()
        fleet.wait_ready(timeout=60)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop()


@pytest.fixture(scope="module")
def shared_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """Three workers and a coordinator that refuses messages over 4 MiB, shared by a module's tests."""
    workdir = tmp_path_factory.mktemp("fleet")
    metrics = f"127.0.0.1:{free_port()}"
    limit = ("--max-message-bytes", str(4 * 1024 * 1024))
    fleet = LocalFleet(workdir, workers=3, coordinator_args=(*limit, "--metrics", metrics))
    fleet.metrics_address = metrics  # type: ignore[attr-defined]
    fleet.start()
    try:
        fleet.wait_ready(timeout=60)
        yield fleet
    finally:
        fleet.stop()
        if os.environ.get("EDGESWARM_KEEP_LOGS") is None:
            shutil.rmtree(workdir, ignore_errors=True)
