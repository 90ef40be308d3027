"""Property: any valid cut plan of any DAG-shaped graph chains back to the whole graph, bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tests.helpers import run_chained, run_whole

UNARY = ("Relu", "Tanh", "Neg", "Identity", "MatMul")
BINARY = ("Add", "Mul", "Sub")
WIDTH = 4


@st.composite
def dag_models(draw: st.DrawFn) -> tuple[onnx.ModelProto, list[int]]:
    inputs = [f"in{i}" for i in range(draw(st.integers(1, 3)))]
    available = list(inputs)
    read: set[str] = set()
    weights: list[str] = []
    nodes = []
    for k in range(draw(st.integers(2, 24))):
        op = draw(st.sampled_from(UNARY + BINARY))
        args = [draw(st.sampled_from(available)) for _ in range(2 if op in BINARY else 1)]
        if op == "MatMul":  # a new weight, or one already used: tied weights
            reuse = weights and draw(st.booleans())
            weight = draw(st.sampled_from(weights)) if reuse else f"w{len(weights)}"
            if not reuse:
                weights.append(weight)
            args.append(weight)
        nodes.append(helper.make_node(op, args, [f"t{k}"], name=f"n{k}"))
        read.update(args)
        available.append(f"t{k}")
    # Every tensor no node reads is a graph output, so no node is dead.
    outputs = [n.output[0] for n in nodes if n.output[0] not in read]
    rng = np.random.default_rng(len(nodes))
    initializers = [
        numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32), w) for w in weights
    ]
    graph = helper.make_graph(
        nodes,
        "dag",
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, ["n", WIDTH]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["n", WIDTH]) for o in outputs],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    positions = range(1, len(nodes))
    cuts = sorted(draw(st.sets(st.sampled_from(positions), min_size=1, max_size=min(5, len(positions)))))
    return model, cuts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag_models(), st.integers(1, 3))
def test_any_cut_plan_chains_back_bit_for_bit(case: tuple[onnx.ModelProto, list[int]], batch: int) -> None:
    model, cuts = case
    rng = np.random.default_rng(batch)
    inputs = {v.name: rng.standard_normal((batch, WIDTH)).astype(np.float32) for v in model.graph.input}
    want = run_whole(model, inputs)
    got = run_chained(model, cuts, inputs)
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"cuts {cuts}")
