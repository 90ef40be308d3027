"""Every cut of every zoo model, run as chained ONNX Runtime sessions, gives the whole model's outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswarm.dev import zoo
from edgeswarm.graph.partition import PartitionError, balanced_cuts, live_after, natural_cuts, split
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import run_chained, run_whole

MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": lambda: zoo.mlp(layers=4, width=32, in_features=16, out_features=4),
    "transformer": lambda: zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=8),
    "cnn": lambda: zoo.cnn(blocks=3, channels=4, image=8),
    "decoder": lambda: zoo.decoder(layers=3, d_model=32, heads=4, d_ff=64, seq=3),
    "with_if": zoo.with_if,
    "tied": zoo.tied,
    "dtypes": zoo.dtypes,
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_natural_cut_and_balanced_split_is_bit_exact(name: str) -> None:
    model = MODELS[name]()
    inputs = sample_inputs(model, batch=2)
    want = run_whole(model, inputs)
    plans = [[c] for c in natural_cuts(model)] + [balanced_cuts(model, k) for k in (2, 3, 4)]
    assert len(plans) > 3
    for cuts in plans:
        got = run_chained(model, cuts, inputs)
        assert got.keys() == want.keys(), cuts
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"cuts {cuts}")


@pytest.mark.parametrize("name", list(MODELS))
def test_random_plans_of_two_to_six_stages_are_bit_exact(name: str) -> None:
    model = MODELS[name]()
    inputs = sample_inputs(model, batch=1, seed=1)
    want = run_whole(model, inputs)
    rng = np.random.default_rng(0)
    n = len(model.graph.node)
    for stages in range(2, 7):
        cuts = sorted(rng.choice(np.arange(1, n), size=stages - 1, replace=False).tolist())
        got = run_chained(model, cuts, inputs)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"cuts {cuts}")


def test_decoder_caches_made_early_are_carried_to_the_end() -> None:
    model = MODELS["decoder"]()
    parts = split(model, balanced_cuts(model, 3))
    assert "present_key_0" in parts[0].outputs
    assert "present_key_0" in parts[1].carry  # handed along, not read by stage 2
    assert "past_key_2" in parts[0].carry and "past_key_2" in parts[2].inputs  # a graph input read late


def test_the_zoo_if_node_stays_whole_with_what_it_captures() -> None:
    model = MODELS["with_if"]()
    position = next(i for i, n in enumerate(model.graph.node) if n.op_type == "If")
    captured = next(n.output[0] for n in model.graph.node if n.op_type == "Relu")
    parts = split(model, [position])
    assert captured in parts[1].inputs
    assert onnx.load_from_string(parts[1].model).graph.node[0].op_type == "If"


def test_transformer_boundaries_between_layers_carry_hidden_state_and_mask() -> None:
    model = MODELS["transformer"]()
    cuts = balanced_cuts(model, 3)
    for cut in cuts:
        assert len(live_after(model, cut)) == 2
    parts = split(model, cuts)
    assert parts[1].inputs == parts[0].carry
    mask_bias = parts[0].carry[0]
    assert all(mask_bias in p.inputs for p in parts[1:])  # every layer reads it


def test_stages_hold_only_their_own_weights() -> None:
    model = MODELS["transformer"]()
    whole = {i.name for i in model.graph.initializer}
    parts = [onnx.load_from_string(p.model) for p in split(model, balanced_cuts(model, 2))]
    halves = [{i.name for i in p.graph.initializer} for p in parts]
    assert all(h < whole for h in halves)
    assert halves[0] | halves[1] == whole


def test_refusals_name_the_cause() -> None:
    model = MODELS["mlp"]()
    n = len(model.graph.node)
    with pytest.raises(PartitionError, match=f"has {n} nodes, too few for {n + 1} stages"):
        balanced_cuts(model, n + 1)
    with pytest.raises(PartitionError, match="cut 3 must lie in"):
        split(model, [5, 3])
    with pytest.raises(PartitionError, match=f"cut {n} must lie in"):
        split(model, [n])


def _tied_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "tied")
    nodes = [
        helper.make_node("MatMul", ["x", "tied"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Tanh", ["b"], ["c"]),
        helper.make_node("MatMul", ["c", "tied"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tied",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_a_tied_weight_goes_to_both_sides_of_a_cut() -> None:
    model = _tied_model()
    parts = split(model, [2])
    for part in parts:
        assert [i.name for i in onnx.load_from_string(part.model).graph.initializer] == ["tied"]
    inputs = {"x": np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)}
    np.testing.assert_array_equal(run_chained(model, [2], inputs)["y"], run_whole(model, inputs)["y"])


def _if_model() -> onnx.ModelProto:
    """`outer` is made before the If and read only inside its branches."""
    then_graph = helper.make_graph(
        [helper.make_node("Add", ["outer", "outer"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["n", 4])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Mul", ["outer", "outer"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["n", 4])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["outer"]),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["r"], then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Neg", ["r"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "with_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_a_tensor_captured_by_an_if_branch_crosses_the_cut() -> None:
    model = _if_model()
    assert "outer" in live_after(model, 3)
    parts = split(model, [3])
    assert parts[1].inputs == ("outer", "cond")
    for sign in (1.0, -1.0):
        inputs = {"x": (sign * np.arange(8, dtype=np.float32)).reshape(2, 4)}
        np.testing.assert_array_equal(run_chained(model, [3], inputs)["y"], run_whole(model, inputs)["y"])


def contrib_chain(layers: int = 3, width: int = 8) -> onnx.ModelProto:
    """MatMul layers with ONNX Runtime's contrib Gelu between them: an operator the onnx library has
    no schema for, so its shape inference leaves what it makes untyped."""
    rng = np.random.default_rng(0)
    nodes, weights, x = [], [], "x"
    for i in range(layers):
        weights.append(
            numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), f"w{i}")
        )
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Gelu", [f"m{i}"], [f"g{i}"], domain="com.microsoft"))
        x = f"g{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(
        nodes,
        "contrib",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        weights,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model


def test_a_graph_with_contrib_ops_is_typed_by_the_runtime_and_cuts_anywhere() -> None:
    model = contrib_chain()
    untyped = onnx.shape_inference.infer_shapes(model)
    assert "g0" not in {v.name for v in untyped.graph.value_info if v.type.tensor_type.elem_type}
    inputs = {"x": np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)}
    whole = run_whole(model, inputs)
    for cut in range(1, len(model.graph.node)):
        np.testing.assert_array_equal(run_chained(model, [cut], inputs)["y"], whole["y"])
