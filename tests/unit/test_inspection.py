import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from edgeswarm.dev import zoo
from edgeswarm.graph.costs import tensor_nbytes
from edgeswarm.graph.inspection import inspect_model, parse_input_shapes
from edgeswarm.graph.quantize import quantize
from edgeswarm.plans import Quantization


def test_transformer_report() -> None:
    layers, d, ff, seq = 2, 64, 128, 16
    model = zoo.transformer_encoder(layers=layers, d_model=d, heads=4, d_ff=ff, seq=seq)
    report = inspect_model(model)
    json.dumps(report)  # one JSON document
    assert report["nodes"] == len(model.graph.node)
    assert report["parameter_bytes"] == sum(
        math.prod(i.dims) * 4 for i in model.graph.initializer if i.data_type == 1
    ) + sum(math.prod(i.dims) * 8 for i in model.graph.initializer if i.data_type == 7)
    matmuls = layers * (4 * 2 * seq * d * d + 2 * 2 * seq * seq * d + 2 * 2 * seq * d * ff)
    assert matmuls <= report["flops"] < 1.1 * matmuls  # element-wise work adds a little
    [embeddings, mask] = report["inputs"]
    assert (embeddings["datatype"], embeddings["shape"]) == ("FP32", [-1, seq, d])
    assert mask["datatype"] == "INT64"
    between_layers = [
        c for c in report["cuts"] if c["natural"] and len(c["tensors"]) == 2 and c["flops_before"] > 0
    ]
    assert between_layers
    for cut in between_layers:
        hidden, bias = sorted(cut["tensors"], key=lambda t: -t["bytes"])
        assert hidden["bytes"] == seq * d * 4 and bias["bytes"] == seq * 4
        assert cut["boundary_bytes"] == hidden["bytes"] + bias["bytes"]
    assert sorted(c["rank"] for c in report["cuts"]) == list(range(1, len(report["cuts"]) + 1))
    smallest = min(report["cuts"], key=lambda c: c["rank"])
    assert smallest["boundary_bytes"] == min(c["boundary_bytes"] for c in report["cuts"])


def test_input_shapes_resolve_symbolic_dimensions() -> None:
    model = zoo.mlp(layers=2, width=16, in_features=8, out_features=4)
    one = inspect_model(model)
    four = inspect_model(model, {"x": [4, 8]})
    assert four["flops"] == 4 * one["flops"]
    assert [c["boundary_bytes"] for c in four["cuts"]] == [4 * c["boundary_bytes"] for c in one["cuts"]]


def test_cnn_flops_count_the_convolutions() -> None:
    model = zoo.cnn(blocks=1, channels=4, image=8, classes=3)  # its one block halves 8x8 and doubles channels
    stem = 2 * (4 * 8 * 8) * (3 * 3 * 3)
    block = 2 * (8 * 4 * 4) * (4 * 3 * 3) + 2 * (8 * 4 * 4) * (8 * 3 * 3) + 2 * (8 * 4 * 4) * 4
    assert stem + block <= inspect_model(model)["flops"] < 1.05 * (stem + block)


def test_input_shape_options() -> None:
    assert parse_input_shapes(["x=1,3,224,224", "mask=1,9"]) == {"x": [1, 3, 224, 224], "mask": [1, 9]}
    for bad in ("x", "x=", "x=a,b", "=1,2", "x=-1"):
        with pytest.raises(ValueError, match="expected NAME=D0,D1"):
            parse_input_shapes([bad])


def test_inspect_command(tmp_path: Path) -> None:
    path = tmp_path / "cnn.onnx"
    onnx.save(zoo.cnn(blocks=2, channels=4, image=8), str(path))
    cli = [sys.executable, "-m", "edgeswarm", "inspect", str(path)]
    run = subprocess.run([*cli, "--json", "--input-shape", "image=2,3,8,8"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["input_shapes"] == {"image": [2, 3, 8, 8]}
    assert report["outputs"][0]["name"] == "logits"
    run = subprocess.run(cli, capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0 and "natural cut positions" in run.stdout and "GFLOP" in run.stdout
    bad = subprocess.run([*cli, "--input-shape", "nope=1,2"], capture_output=True, text=True)
    assert bad.returncode == 1 and "has no input 'nope'" in bad.stderr
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 not a model" * 10)
    bad = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "inspect", str(corrupt)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and str(corrupt) in bad.stderr


@pytest.mark.parametrize(
    "build",
    [zoo.builtin_model, lambda: zoo.decoder(layers=2, d_model=64, heads=4, d_ff=128, seq=8), zoo.cnn],
    ids=["encoder", "decoder", "cnn"],
)
def test_the_quantized_size_estimate_is_what_the_quantizers_write(
    build: Callable[[], onnx.ModelProto],
) -> None:
    model = build()
    estimate = inspect_model(model)["quantized_bytes_estimate"]
    for method in Quantization:
        written = quantize(model, method)
        assert estimate[method] == sum(tensor_nbytes(t) for t in written.graph.initializer), method
