"""A model larger than protobuf's 2 GiB limit, written straight to disk with its weights in external
data: `layers` square MatMul + Tanh layers with deterministic weights, generated and written one layer
at a time, so that neither the model nor one layer's worth of copies is held twice in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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
    # Uniform in [-a, a] with the variance of N(0, (1.5 / sqrt(width))^2): half the time of normal draws.
    scale = np.float32(2 * np.sqrt(3) * 1.5 / np.sqrt(width))
    with data_path.open("wb") as data:
        for i in range(layers):
            w = rng.random((width, width), dtype=np.float32)
            w -= np.float32(0.5)
            w *= scale
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


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of process `pid` (0: this one), in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


# `edgeswarm deploy` in a process that reports its resident memory before the deploy and its peak after.
_MEASURED_CLI = """
import json, sys
from edgeswarm.cli import main
from edgeswarm.dev.bigmodel import memory_of

before = memory_of(0)["VmRSS"]
code = main(sys.argv[1:])
print(json.dumps({"code": code, "rss_before": before, "hwm_after": memory_of(0)["VmHWM"]}))
"""


def deploy_measured(path: Path, coordinator: str, *args: str, timeout: float = 900) -> dict[str, float]:
    """Runs `edgeswarm deploy PATH ARGS` as its own process: its exit code, its RSS before the deploy
    and peak after (bytes), the seconds it took, and its stderr."""
    argv = [sys.executable, "-c", _MEASURED_CLI, "deploy", str(path), *args, "--coordinator", coordinator]
    start = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if run.returncode != 0 or not run.stdout.strip():
        raise RuntimeError(f"edgeswarm deploy failed ({run.returncode}): {run.stderr[-3000:]}")
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    return {**figures, "seconds": seconds}
