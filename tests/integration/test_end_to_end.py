"""Replicas and pipelines through real processes: outputs equal one ORT session bit for bit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.client import Client
from edgeswarm.dev.localfleet import LocalFleet
from tests.helpers import inputs_for, reference

pytestmark = pytest.mark.integration

LAYOUTS = {
    "replicas": {"mode": "replicas", "replicas": 2},
    "pipeline2": {"mode": "pipeline", "stages": 2},
    "pipeline3": {"mode": "pipeline", "stages": 3},
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("model", ["mlp", "transformer", "cnn", "decoder", "with_if"])
def test_outputs_equal_one_session_bit_for_bit(
    shared_fleet: LocalFleet, model_files: dict[str, Path], model: str, layout: str
) -> None:
    path = model_files[model]
    name = f"{model}-{layout}"
    with Client(shared_fleet.coordinator_address) as client:
        info = client.deploy(path, name, **LAYOUTS[layout], timeout=60)  # type: ignore[arg-type]
        stages = LAYOUTS[layout].get("stages", 1)
        assert len(info.stages) == stages
        assert len({w for s in info.stages for w in s.workers}) == stages * LAYOUTS[layout].get("replicas", 1)
        if model == "transformer" and stages > 1:
            # Every layer reads the attention mask: the boundaries carry it beside the hidden state.
            assert all(len(s.inputs) >= 2 for s in info.stages[1:])
        for seed in range(3):
            inputs = inputs_for(path, batch=2, seed=seed)
            got = client.infer(name, inputs, timeout=30)
            want = reference(path, inputs)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key].dtype == want[key].dtype
                np.testing.assert_array_equal(got[key], want[key])
        client.undeploy(name)
        assert not client.is_ready(name)


def test_status_shows_workers_and_placement(shared_fleet: LocalFleet, model_files: dict[str, Path]) -> None:
    with Client(shared_fleet.coordinator_address) as client:
        client.deploy(model_files["mlp"], "status-mlp", mode="pipeline", stages=3, timeout=60)
        before = client.status()
        client.infer("status-mlp", inputs_for(model_files["mlp"], batch=1), timeout=10)
        report = client.status()
        client.undeploy("status-mlp")
    assert report.fleet == shared_fleet.fleet
    assert sorted(w.name for w in report.workers) == ["worker1", "worker2", "worker3"]
    assert all(w.state == "up" and w.cores >= 1 for w in report.workers)
    model = next(m for m in report.models if m.name == "status-mlp")
    assert [s.index for s in model.stages] == [0, 1, 2]
    holders = {w.name for w in report.workers if "status-mlp/1" in w.loaded_stages}
    assert len(holders) == 1
    # What a request has lately taken through each worker, as routing weighs it: known once one ran.
    unused = next(m for m in before.models if m.name == "status-mlp")
    assert [list(s.recent_ms) for s in unused.stages] == [[0.0]] * 3
    assert all(len(s.recent_ms) == 1 and 0 < s.recent_ms[0] < 10_000 for s in model.stages)


def test_cli_deploy_infer_status(
    shared_fleet: LocalFleet, model_files: dict[str, Path], tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    address = shared_fleet.coordinator_address
    cli = [sys.executable, "-m", "edgeswarm"]
    deploy = [
        *cli,
        "deploy",
        str(model_files["cnn"]),
        "--name",
        "cli-cnn",
        "--mode",
        "pipeline",
        "--stages",
        "2",
    ]
    out = subprocess.run([*deploy, "--coordinator", address], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "deployed cli-cnn version 1 as pipeline" in out.stdout
    inputs = inputs_for(model_files["cnn"], batch=1)
    np.savez(tmp_path / "in.npz", **inputs)
    infer = [
        *cli,
        "infer",
        "cli-cnn",
        "--input",
        str(tmp_path / "in.npz"),
        "--output",
        str(tmp_path / "out.npz"),
    ]
    out = subprocess.run([*infer, "--coordinator", address], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_array_equal(got["logits"], reference(model_files["cnn"], inputs)["logits"])
    out = subprocess.run([*cli, "status", "--json", "--coordinator", address], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "cli-cnn" in {m["name"] for m in json.loads(out.stdout)["models"]}
    wide = {**os.environ, "COLUMNS": "220"}
    out = subprocess.run([*cli, "status", "--coordinator", address], capture_output=True, text=True, env=wide)
    assert "worker1" in out.stdout and "cli-cnn" in out.stdout
    bad = subprocess.run(
        [
            *cli,
            "infer",
            "nope",
            "--input",
            str(tmp_path / "in.npz"),
            "--output",
            str(tmp_path / "x.npz"),
            "--coordinator",
            address,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "NOT_FOUND" in bad.stderr and "'nope'" in bad.stderr


def test_every_datatype_travels_and_early_outputs_are_handed_to_the_end(
    shared_fleet: LocalFleet, model_files: dict[str, Path]
) -> None:
    path = model_files["dtypes"]
    inputs = inputs_for(path, batch=2)
    assert {a.dtype.name for a in inputs.values()} == {
        "float16",
        "int32",
        "int8",
        "uint8",
        "bool",
        "int64",
        "float32",
    }
    want = reference(path, inputs)
    with Client(shared_fleet.coordinator_address) as client:
        info = client.deploy(path, "dtypes", mode="pipeline", stages=3, timeout=60)
        assert "half_out" in info.stages[0].outputs  # made in stage 1, returned by stage 3
        got = client.infer("dtypes", inputs, timeout=30)
        some = client.infer("dtypes", inputs, timeout=30, outputs=("flag_out", "half_out"))
        client.undeploy("dtypes")
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype
        np.testing.assert_array_equal(got[key], want[key])
    assert list(some) == ["flag_out", "half_out"]
    np.testing.assert_array_equal(some["flag_out"], want["flag_out"])


def test_coordinator_metrics_count_calls_by_status_and_tensor_bytes(
    shared_fleet: LocalFleet, model_files: dict[str, Path]
) -> None:
    from edgeswarm.client import NotFound

    inputs = inputs_for(model_files["mlp"])
    outputs = reference(model_files["mlp"], inputs)
    before = _metrics(shared_fleet)
    with Client(shared_fleet.coordinator_address) as client:
        client.deploy(model_files["mlp"], "metrics-mlp", mode="replicas", replicas=1, timeout=60)
        for _ in range(3):
            client.infer("metrics-mlp", inputs)
        with pytest.raises(NotFound):
            client.infer("metrics-nope", inputs)
        client.undeploy("metrics-mlp")
    samples = _metrics(shared_fleet)
    infer = 'method="/inference.GRPCInferenceService/ModelInfer"'
    assert samples[f'edgeswarm_rpcs_total{{code="OK",{infer}}}'] >= 3
    assert samples[f'edgeswarm_rpcs_total{{code="NOT_FOUND",{infer}}}'] >= 1
    assert samples['edgeswarm_workers{state="up"}'] == 3
    for direction, arrays in (("in", inputs), ("out", outputs)):
        key = f'edgeswarm_coordinator_tensor_bytes_total{{direction="{direction}"}}'
        assert samples[key] - before.get(key, 0.0) == 3 * sum(a.nbytes for a in arrays.values())


def _metrics(fleet: LocalFleet) -> dict[str, float]:
    import urllib.request

    url = f"http://{fleet.metrics_address}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
