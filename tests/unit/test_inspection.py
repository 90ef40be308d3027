import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

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


def llama_step(layers: int = 2, heads: int = 2, dh: int = 32, vocab: int = 50) -> onnx.ModelProto:
    """A Llama-style export in miniature: past_key_values.N.key/value in, present.N.key/value out, the
    keys through a rotary embedding whose halves are Slices with computed ends (`x.shape[-1] // 2`),
    which onnx's shape inference cannot follow."""
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    weights = {
        "embed": rng.standard_normal((vocab, heads * dh)),
        "cos": rng.standard_normal((128, dh)),
        "sin": rng.standard_normal((128, dh)),
        "lm_head": rng.standard_normal((heads * dh, vocab)),
    }
    ints = {
        "split": [0, 0, heads, dh],
        "zero": [0],
        "big": [2**62],
        "axis1": [1],
        "axis3": [3],
        "three": 3,
        "two": 2,
    }

    def op(op_type: str, inputs: list[str], out: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op_type, inputs, [out or f"t{len(nodes)}"], **attrs))
        return nodes[-1].output[0]

    def heads_first(x: str, weight: str) -> str:
        weights[weight] = rng.standard_normal((heads * dh, heads * dh))
        projected = op("Reshape", [op("MatMul", [x, weight]), "split"])
        return op("Transpose", [projected], perm=[0, 2, 1, 3])

    x = op("Gather", ["embed", "input_ids"])
    cos, sin = (op("Unsqueeze", [op("Gather", [t, "position_ids"]), "axis1"]) for t in ("cos", "sin"))
    for i in range(layers):
        key, value = heads_first(x, f"wk{i}"), heads_first(x, f"wv{i}")
        half = op("Unsqueeze", [op("Div", [op("Gather", [op("Shape", [key]), "three"]), "two"]), "zero"])
        low, high = op("Slice", [key, "zero", half, "axis3"]), op("Slice", [key, half, "big", "axis3"])
        rotated = op("Concat", [op("Neg", [high]), low], axis=-1)
        key = op("Add", [op("Mul", [key, cos]), op("Mul", [rotated, sin])])
        op("Concat", [f"past_key_values.{i}.key", key], f"present.{i}.key", axis=2)
        op("Concat", [f"past_key_values.{i}.value", value], f"present.{i}.value", axis=2)
        weights[f"wo{i}"] = rng.standard_normal((heads * dh, heads * dh))
        x = op("Add", [x, op("MatMul", [x, f"wo{i}"])])
    op("MatMul", [x, "lm_head"], "logits")
    tokens = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, tokens) for n in ("input_ids", "position_ids")
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [*tokens, vocab])]
    for i in range(layers):
        for kind in ("key", "value"):
            past, present = f"past_key_values.{i}.{kind}", f"present.{i}.{kind}"
            inputs.append(
                helper.make_tensor_value_info(past, TensorProto.FLOAT, ["batch", heads, "past_sequence", dh])
            )
            outputs.append(
                helper.make_tensor_value_info(
                    present, TensorProto.FLOAT, ["batch", heads, "total_sequence", dh]
                )
            )
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    initializers += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items()]
    graph = helper.make_graph(nodes, "llama_step", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_dimension_onnx_shape_inference_loses_is_not_taken_as_1() -> None:
    model = llama_step()
    onnx.checker.check_model(model, full_check=True)
    past = {f"past_key_values.{i}.{kind}": [1, 2, 99, 32] for i in range(2) for kind in ("key", "value")}
    shapes = {"input_ids": [1, 1], "position_ids": [1, 1], **past}  # a 100-token context
    report = inspect_model(model, shapes)
    sizes = {t["name"]: t["bytes"] for cut in report["cuts"] for t in cut["tensors"]}
    feeds = {n: np.zeros(s, np.int64 if n.endswith("_ids") else np.float32) for n, s in shapes.items()}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ran = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    for i in range(2):
        for kind in ("key", "value"):
            assert sizes[f"present.{i}.{kind}"] == 1 * 2 * 100 * 32 * 4 == ran[f"present.{i}.{kind}"].nbytes
    symbolic = inspect_model(model)  # symbolic dimensions at 1: keys and values alike
    sizes = {t["name"]: t["bytes"] for cut in symbolic["cuts"] for t in cut["tensors"]}
    assert {sizes[f"present.{i}.{kind}"] for i in range(2) for kind in ("key", "value")} == {2 * 32 * 4}


def test_a_size_no_shape_inference_can_tell_is_unknown() -> None:
    nodes = [
        helper.make_node("NonZero", ["x"], ["where"]),
        helper.make_node("Cast", ["where"], ["found"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["found"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "nonzero",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    [after_nonzero, after_cast] = inspect_model(model)["cuts"]
    assert after_nonzero["tensors"] == [{"name": "where", "bytes": None}]
    assert after_cast["boundary_bytes"] is None and after_cast["rank"] == 2
