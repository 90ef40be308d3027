"""Quantization at deploy: int8 and int4 deploys of the built-in encoder and of the zoo decoder, as
replicas and as 3-stage pipelines, give bit for bit what one session on the file `edgeswarm
quantize` writes gives; that file is smaller and its outputs close to the float model's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference

pytestmark = pytest.mark.integration

MODELS = {
    "encoder": zoo.builtin_model,
    "decoder": lambda: zoo.decoder(layers=3, d_model=64, heads=4, d_ff=128, seq=4),
}
# Largest size of the quantized file as a share of the float one (MatMul-heavy models).
RATIO = {"int8": 0.35, "int4": 0.25}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("method", ["int8", "int4"])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_quantized_deploy_equals_the_quantized_file(
    make_fleet: object, tmp_path: Path, name: str, method: str
) -> None:
    model = MODELS[name]()
    source, quantized = tmp_path / f"{name}.onnx", tmp_path / f"{name}.{method}.onnx"
    onnx.save(model, str(source))
    cli = [
        sys.executable,
        "-m",
        "edgeswarm",
        "quantize",
        str(source),
        "--to",
        method,
        "--output",
        str(quantized),
    ]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ratio = quantized.stat().st_size / source.stat().st_size
    assert ratio < RATIO[method], ratio

    inputs = sample_inputs(model, batch=1, seed=2)
    want = reference(quantized, inputs)
    exact = reference(source, inputs)
    first = next(iter(exact))
    print(f"{name} {method}: {ratio:.3f}x of fp32 bytes, cosine {cosine(want[first], exact[first]):.5f}, "
          f"max abs diff {float(np.abs(want[first] - exact[first]).max()):.4f}")  # fmt: skip
    if (name, method) == ("encoder", "int8"):
        assert cosine(want[first], exact[first]) >= 0.98

    fleet = make_fleet(workers=3)  # type: ignore[operator]
    with Client(fleet.coordinator_address) as client:
        for layout, shape in (("replicas", {"replicas": 3}), ("pipeline", {"stages": 3})):
            info = client.deploy(source, name, mode=layout, quantize=method, timeout=180, **shape)
            assert info.quantization == method and len(info.stages) == (3 if layout == "pipeline" else 1)
            got = client.infer(name, inputs, timeout=30)
            assert got.keys() == want.keys()
            for key in want:
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{layout} {key}")
        [status] = [m for m in client.status().models if m.name == name]
        assert status.quantization == method


def test_a_model_in_external_data_is_quantized_stage_by_stage_to_the_files_bits(
    make_fleet: object, tmp_path: Path
) -> None:
    """The coordinator quantizes a model kept in external data one stage at a time; `edgeswarm quantize`
    quantizes the whole file. Both give the same bits."""
    fleet = make_fleet(workers=3)  # type: ignore[operator]
    with Client(fleet.coordinator_address) as client:
        for name, build in MODELS.items():
            model = build()
            source = tmp_path / name / f"{name}.onnx"
            source.parent.mkdir()
            onnx.save_model(model, str(source), save_as_external_data=True, location=f"{name}.data")
            inputs = sample_inputs(model, batch=1, seed=2)
            for method in ("int8", "int4"):
                quantized = tmp_path / f"{name}.{method}.onnx"
                cli = [sys.executable, "-m", "edgeswarm", "quantize", str(source), "--to", method,
                       "--output", str(quantized)]  # fmt: skip
                done = subprocess.run(cli, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, done.stderr
                want = reference(quantized, inputs)
                for layout, shape in (("pipeline", {"stages": 3}), ("replicas", {"replicas": 1})):
                    deployed = f"{name}-{method}-{layout}"
                    info = client.deploy(source, deployed, mode=layout, quantize=method, timeout=180, **shape)
                    assert info.quantization == method
                    got = client.infer(deployed, inputs, timeout=30)
                    for key in want:
                        np.testing.assert_array_equal(got[key], want[key], err_msg=f"{deployed} {key}")
        (stored,) = [m for m in client.status().store.models if f"{name}-int4-replicas" in m.name]
    assert set(stored.variants) == {"int8", "int4"}
