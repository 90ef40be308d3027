"""A model that costs nothing but its calls: what the coordinator times a worker's call overhead with."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

OPSET = 17
IR_VERSION = 9


def identity_chain(floats: int, stages: int = 1) -> onnx.ModelProto:
    """`stages` Identity nodes on a float vector `t0` -> `t<stages>`: stages that cost nothing but
    their calls, for measuring what a hop itself costs."""
    nodes = [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"]) for i in range(stages)]
    graph = helper.make_graph(
        nodes,
        "identity_chain",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [floats])],
        [helper.make_tensor_value_info(f"t{stages}", TensorProto.FLOAT, [floats])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeswarm"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
