"""What a worker can do, measured with ONNX Runtime itself: a calibration figure at start, and the
time of each model segment at deploy. Blocking: run in a thread."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

CALIBRATION_SIZE = 256


def calibrate(options: ort.SessionOptions, seconds: float = 0.5) -> float:
    """GFLOP/s of a 256x256 float32 MatMul in ONNX Runtime with the worker's session options, run
    back to back for `seconds` (long enough to feel a CPU quota, whose period is 100 ms)."""
    n = CALIBRATION_SIZE
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "calibration",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((n, n), dtype=np.float32) for x in ("a", "b")}
    session.run(None, feeds)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        session.run(None, feeds)
        runs += 1
    return 2 * n**3 * runs / elapsed / 1e9


def profile_chain(
    paths: Sequence[Path],
    inputs: Mapping[str, np.ndarray],
    options: ort.SessionOptions,
    repeats: int,
    min_seconds: float = 0.2,
) -> list[float]:
    """Mean seconds of each segment, run in order, each fed what the ones before it produced.

    Each segment runs at least `repeats` times and for at least `min_seconds`: a mean over several
    100 ms periods of a CPU quota shows the quota, where a median of short runs would hide it.
    """
    env = dict(inputs)
    means = []
    for path in paths:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = {i.name: env[i.name] for i in session.get_inputs()}
        outputs = session.run(None, feeds)  # warm-up; also what the next segment reads
        runs, start = 0, time.perf_counter()
        while runs < max(repeats, 1) or time.perf_counter() - start < min_seconds:
            session.run(None, feeds)
            runs += 1
        means.append((time.perf_counter() - start) / runs)
        env.update(zip((o.name for o in session.get_outputs()), outputs, strict=True))
    return means
