"""A model larger than protobuf's 2 GiB limit, written straight to disk with its weights in external
data: `layers` square MatMul + Tanh layers with deterministic weights, generated and written one layer
at a time, so that neither the model nor one layer's worth of copies is held twice in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeswarm.graph.stagefiles import ALIGNMENT, point_at

# 8 layers of 8192 x 8192 fp32: 2 GiB of weights, over protobuf's limit for one file.
LAYERS = 8
WIDTH = 8192


def write_big_mlp(path: Path, layers: int = LAYERS, width: int = WIDTH, seed: int = 0) -> int:
    """Writes the model to `path` (its data to `<stem>.data` beside it); returns the weight bytes."""
    data_path = path.with_suffix(".data")
    nodes, weights = [], []
    x = "x"
    rng = np.random.default_rng(seed)
    scale = np.float32(1.5 / np.sqrt(width))
    with data_path.open("wb") as data:
        for i in range(layers):
            w = (rng.standard_normal((width, width), dtype=np.float32) * scale).astype(np.float32)
            offset = data.tell()
            data.write(w.tobytes())
            data.write(bytes(-data.tell() % ALIGNMENT))
            weight = onnx.TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=w.shape)
            point_at(weight, data_path.name, offset, w.nbytes)
            weights.append(weight)
            del w
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
            y = "y" if i == layers - 1 else f"h{i}"
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [y]))
            x = y
    graph = helper.make_graph(
        nodes,
        "big_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return layers * width * width * 4
