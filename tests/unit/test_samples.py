"""Sample inputs come from declared types and shapes, within a byte bound checked before any is made."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeswarm.graph.samples import sample_inputs


def declared(*inputs: tuple[str, int, list[int | str]]) -> object:
    graph = helper.make_graph(
        [helper.make_node("Identity", [inputs[0][0]], ["y"])],
        "g",
        [helper.make_tensor_value_info(name, kind, shape) for name, kind, shape in inputs],
        [helper.make_tensor_value_info("y", inputs[0][1], None)],
    )
    return helper.make_model(graph)


def test_types_shapes_and_ranges_follow_the_declaration() -> None:
    model = declared(("x", TensorProto.FLOAT, ["batch", 3]), ("ids", TensorProto.INT64, [2, 4]))
    inputs = sample_inputs(model, batch=5)  # type: ignore[arg-type]
    assert inputs["x"].shape == (5, 3) and inputs["x"].dtype == np.float32
    assert inputs["ids"].shape == (2, 4) and set(np.unique(inputs["ids"])) <= {0, 1}


def test_a_declared_shape_too_big_to_sample_is_refused_before_anything_is_made() -> None:
    model = declared(("huge", TensorProto.FLOAT, [2**27]))
    with pytest.raises(
        ValueError, match=r"would take over 268435456 bytes \(input 'huge' is \[134217728\] FP32\)"
    ):
        sample_inputs(model)  # type: ignore[arg-type]
    small = declared(("x", TensorProto.FLOAT, [1024]))
    assert sample_inputs(small, max_bytes=4096)["x"].nbytes == 4096  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="over 4095 bytes"):
        sample_inputs(small, max_bytes=4095)  # type: ignore[arg-type]
