"""Helpers shared by the tests: the test models, reference outputs, chained stage runs, small plans."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeswarm.dev import zoo
from edgeswarm.dev.netns.namespaces import unavailable
from edgeswarm.dev.reference import reference as reference
from edgeswarm.graph.partition import split
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.plans import Plan, Signature, StageSpec
from edgeswarm.worker.runtime import session_options

# Small enough for tests, big enough that each has several layers to cut between.
MODELS = {
    "mlp": lambda: zoo.mlp(layers=6, width=64, in_features=32, out_features=8),
    "transformer": lambda: zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=16),
    "cnn": lambda: zoo.cnn(blocks=3, channels=8, image=16),
    "dtypes": zoo.dtypes,
    "decoder": lambda: zoo.decoder(layers=3, d_model=32, heads=4, d_ff=64, seq=3),
    "with_if": zoo.with_if,
}

# "basic" is the workers' default: with ORT_ENABLE_EXTENDED or _ALL, fusions can differ between a
# stage and the whole graph, and outputs then differ in the last bits.
OPTIONS = session_options(1, "basic")


def inputs_for(path: Path, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    return sample_inputs(onnx.load(str(path)), batch=batch, seed=seed)


def run_whole(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), OPTIONS)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def run_chained(
    model: onnx.ModelProto, cuts: list[int], inputs: dict[str, np.ndarray], recompute: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    env = dict(inputs)
    for part in split(model, cuts, recompute):
        onnx.checker.check_model(onnx.load_from_string(part.model))
        session = ort.InferenceSession(part.model, OPTIONS)
        assert [i.name for i in session.get_inputs()] == list(part.inputs)
        outputs = session.run(list(part.outputs), {name: env[name] for name in part.inputs})
        env.update(zip(part.outputs, outputs, strict=True))
        env = {name: env[name] for name in part.carry}  # only what the plan hands on survives
    return env


def plan_of(*stage_workers: tuple[str, ...]) -> Plan:
    """A one-group plan of model "m" whose stage i is held by stage_workers[i]."""
    stages = tuple(
        StageSpec(i, f"sha{i}", 1, ("x",), ("y",), ("y",), workers) for i, workers in enumerate(stage_workers)
    )
    return Plan("m", 1, "pipeline", Signature((), ()), stages)


def skip_or_fail(reason: str) -> NoReturn:
    """Skips the test, or fails it when CI=true, so that a CI machine unable to run it is noticed."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_netns() -> None:
    """Skips (or fails on CI) a test this machine cannot run network namespaces for."""
    reason = unavailable()
    if reason is not None:
        skip_or_fail(reason)


def one_long_kernel(size: int = 2048) -> onnx.ModelProto:
    """x [1] expanded to a square matrix, squared by one MatMul: one node, which ONNX Runtime's
    terminate flag cannot stop once it has started."""
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["x", "shape"], ["m"]),
            helper.make_node("MatMul", ["m", "m"], ["y"]),
        ],
        "long",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [size, size])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def runaway_loop() -> onnx.ModelProto:
    """A Loop of 2**62 iterations: a graph that would hold a worker's core for ever."""
    info = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Add", ["y_in", "one"], ["y_out"]),
        helper.make_node("Identity", ["c_in"], ["c_out"]),
    ]
    body = helper.make_graph(
        nodes,
        "body",
        [
            info("i", TensorProto.INT64, []),
            info("c_in", TensorProto.BOOL, []),
            info("y_in", TensorProto.FLOAT, [1]),
        ],
        [info("c_out", TensorProto.BOOL, []), info("y_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)],
        "runaway",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [
            helper.make_tensor("trip", TensorProto.INT64, [], [2**62]),
            helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
