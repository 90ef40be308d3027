"""State pairs of decoders: found by name or declared, checked against the graph, kept in one stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswarm.dev import zoo
from edgeswarm.errors import InvalidRequest, PlacementError
from edgeswarm.graph.decoder import (
    StatePair,
    check_pairs_in_split,
    check_pairs_in_stages,
    empty_states,
    is_decoder,
    parse_states,
    state_pairs,
)
from edgeswarm.graph.partition import balanced_cuts, split

HEADS, DH, D, VOCAB = 2, 4, 8, 11
PAST: list[str | int] = ["batch", HEADS, "past_sequence", DH]
PRESENT: list[str | int] = ["batch", HEADS, "total_sequence", DH]


def cache_model(
    pairs: Sequence[tuple[str, str]],
    shapes: Mapping[str, list[str | int]] | None = None,
    types: Mapping[str, int] | None = None,
    extra_inputs: Sequence[str] = (),
    read_early: bool = False,
) -> onnx.ModelProto:
    """Tokens in, logits out, and per (present, past) pair: present = Concat(past, new keys) on axis 2.

    `shapes` and `types` override a name's declared shape and element type (a past of another type is
    cast first); `read_early` reads each past in the graph's first nodes, far from its Concat.
    """
    shapes, types = shapes or {}, types or {}
    rng = np.random.default_rng(0)
    weights = {"embed": rng.standard_normal((VOCAB, D)), "lm_head": rng.standard_normal((D, VOCAB))}
    nodes: list[onnx.NodeProto] = []
    pasts = {}
    for _, past in pairs:
        pasts[past] = past
        if types.get(past, TensorProto.FLOAT) != TensorProto.FLOAT or read_early:
            pasts[past] = f"{past}_read"
            nodes.append(helper.make_node("Cast", [past], [pasts[past]], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Gather", ["embed", "input_ids"], ["x"]))
    for i, (present, past) in enumerate(pairs):
        weights[f"w{i}"] = rng.standard_normal((D, HEADS * DH))
        nodes += [
            helper.make_node("MatMul", ["x", f"w{i}"], [f"k{i}"]),
            helper.make_node("Reshape", [f"k{i}", "split"], [f"k{i}_heads"]),
            helper.make_node("Transpose", [f"k{i}_heads"], [f"k{i}_t"], perm=[0, 2, 1, 3]),
            helper.make_node("Concat", [pasts[past], f"k{i}_t"], [present], axis=2),
        ]
    nodes.append(helper.make_node("MatMul", ["x", "lm_head"], ["logits"]))
    info = helper.make_tensor_value_info
    inputs = [info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", *extra_inputs)]
    inputs += [info(p, types.get(p, TensorProto.FLOAT), shapes.get(p, PAST)) for _, p in pairs]
    outputs = [info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])]
    outputs += [info(p, types.get(p, TensorProto.FLOAT), shapes.get(p, PRESENT)) for p, _ in pairs]
    initializers = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([0, 0, HEADS, DH], np.int64), "split"))
    graph = helper.make_graph(nodes, "cache", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


HF = [(f"present.{i}.{kind}", f"past_key_values.{i}.{kind}") for i in range(2) for kind in ("key", "value")]


def test_exporters_names_tell_the_pairs_and_their_sequence_axis() -> None:
    model = cache_model(HF)
    onnx.checker.check_model(model, full_check=True)
    assert is_decoder(model)
    assert state_pairs(model) == tuple(StatePair(out, inp, 2) for out, inp in HF)
    underscored = zoo.decoder(layers=2, d_model=16, heads=2, d_ff=32, seq=3)
    assert state_pairs(underscored) == tuple(
        StatePair(f"present_{kind}_{i}", f"past_{kind}_{i}", 2) for i in range(2) for kind in ("key", "value")
    )
    dotted = cache_model([("present.0", "past.0")])
    assert state_pairs(dotted) == (StatePair("present.0", "past.0", 2),)


def test_no_pairs_without_the_names() -> None:
    plain = zoo.mlp(layers=2, width=8, in_features=4, out_features=2)
    assert not is_decoder(plain) and state_pairs(plain) == ()
    # An output named like a state with no input of the matching name is only an output.
    first_step = cache_model([("present.0.key", "past_key_values.0.key")])
    first_step.graph.input[1].name = "cache_0"
    assert not is_decoder(first_step) and state_pairs(first_step) == ()


def test_declared_pairs_extend_and_override_the_names() -> None:
    own = [("cache_out_0", "cache_in_0"), ("cache_out_1", "cache_in_1")]
    model = cache_model(own)
    assert not is_decoder(model) and state_pairs(model) == ()
    declared = dict(reversed(own))  # the result follows the graph's output order, not the mapping's
    assert state_pairs(model, declared) == tuple(StatePair(out, inp, 2) for out, inp in own)
    both = cache_model([("present_key_0", "cache_k0")], extra_inputs=["past_key_0"])
    both.graph.input[1].type.CopyFrom(both.graph.input[2].type)  # past_key_0 looks like a cache too
    assert state_pairs(both) == (StatePair("present_key_0", "past_key_0", 2),)
    assert state_pairs(both, {"present_key_0": "cache_k0"}) == (StatePair("present_key_0", "cache_k0", 2),)
    assert parse_states(["cache_out_0=cache_in_0"]) == {"cache_out_0": "cache_in_0"}
    for bad in ("cache_out_0", "=x", "x=", "a=b a=c"):
        with pytest.raises(InvalidRequest, match="expected OUTPUT=INPUT"):
            parse_states(bad.split())


@pytest.mark.parametrize(
    ("model", "declared", "message"),
    [
        (lambda: cache_model(HF), {"present.9.key": "past_key_values.0.key"}, "no output 'present.9.key'"),
        (lambda: cache_model(HF), {"present.0.key": "past.0.key"}, "no input 'past.0.key'"),
        (lambda: cache_model(HF), {"present.0.key": "embed"}, "'embed' is a weight"),
        (
            lambda: cache_model(HF[:1], types={"past_key_values.0.key": TensorProto.FLOAT16}),
            {},
            "output is FLOAT, the input FLOAT16",
        ),
        (lambda: cache_model(HF[:1], shapes={"present.0.key": ["batch", 8, "total"]}), {}, "rank 3"),
        (
            lambda: cache_model(HF[:1], shapes={"present.0.key": ["batch_size", HEADS, "total", DH]}),
            {},
            r"differ on axes \[0, 2\]",
        ),
        (lambda: cache_model(HF[:1], shapes={"present.0.key": PAST}), {}, "are the same"),
        (
            lambda: cache_model(HF[:2]),
            {"present.0.key": "past_key_values.0.value"},
            "two outputs cannot feed one input",
        ),
    ],
    ids=["no-output", "no-input", "weight", "dtype", "rank", "ambiguous-axis", "no-axis", "fed-twice"],
)
def test_a_pair_the_graph_contradicts_is_refused(
    model: Callable[[], onnx.ModelProto], declared: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        state_pairs(model(), declared)
    assert "state pair" in str(caught.value)


def test_empty_states_start_a_session_the_runtime_accepts() -> None:
    model = zoo.decoder(layers=2, d_model=16, heads=2, d_ff=32, seq=3)
    pairs = state_pairs(model)
    states = empty_states(model, pairs, batch=2)
    assert {k: (v.shape, v.dtype) for k, v in states.items()} == {
        p.input: ((2, 2, 0, 8), np.dtype(np.float32)) for p in pairs
    }
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    embeds = np.random.default_rng(0).standard_normal((2, 3, 16)).astype(np.float32)
    feeds: dict[str, np.ndarray] = {"input_embeds": embeds, **states}
    for step in (1, 2):
        ran = dict(zip(names, session.run(None, feeds), strict=True))
        for pair in pairs:
            assert ran[pair.output].shape[pair.axis] == 3 * step
            feeds[pair.input] = ran[pair.output]
    fused = cache_model(
        [("present.0", "past.0")],
        shapes={
            "past.0": [2, "batch_size", HEADS, "past", DH],
            "present.0": [2, "batch_size", HEADS, "all", DH],
        },
    )
    [pair] = state_pairs(fused)
    assert pair.axis == 3 and empty_states(fused, [pair], batch=4)["past.0"].shape == (2, 4, HEADS, 0, DH)
    half = cache_model(HF[:1], types={"past_key_values.0.key": TensorProto.FLOAT16})
    half.graph.output[1].type.tensor_type.elem_type = TensorProto.FLOAT16
    assert empty_states(half, state_pairs(half))["past_key_values.0.key"].dtype == np.float16


def test_empty_states_refuse_a_dimension_of_no_known_size() -> None:
    shapes: dict[str, list[str | int]] = {
        "past_key_values.0.key": ["batch", "heads", "past", DH],
        "present.0.key": ["batch", "heads", "total", DH],
    }
    model = cache_model(HF[:1], shapes=shapes)
    with pytest.raises(InvalidRequest, match=r"'past_key_values.0.key': dimension 1 \(heads\)"):
        empty_states(model, state_pairs(model))


def test_a_state_must_be_read_and_written_by_one_stage() -> None:
    model = cache_model(HF[:1], read_early=True)  # node 0 reads the past, node 6 writes the present
    [pair] = state_pairs(model)
    check_pairs_in_split(split(model, [6]), [pair])
    with pytest.raises(PlacementError, match=r"stage 1 produces 'present\.0\.key' but stage 0 reads"):
        check_pairs_in_split(split(model, [1]), [pair])
    decoder = zoo.decoder(layers=3, d_model=16, heads=2, d_ff=32, seq=3)
    check_pairs_in_split(split(decoder, balanced_cuts(decoder, 3)), state_pairs(decoder))
    # Replicas of the whole model and a two-stage pipeline of it, side by side, are fine.
    groups = [({"past", "x"}, {"present"}), ({"x"}, {"h"}), ({"h", "past"}, {"present"})]
    check_pairs_in_stages(groups, [StatePair("present", "past", 2)])
    for stage_io, message in [
        ([({"x"}, {"present"})], "stage 0 produces 'present' but no stage reads 'past'"),
        ([({"past"}, {"h"})], "no stage produces 'present'"),
        (
            [({"past"}, {"present"}), ({"past"}, {"y"})],
            "stage 0 produces 'present' but stages 0, 1 read 'past'",
        ),
    ]:
        with pytest.raises(PlacementError, match=message):
            check_pairs_in_stages(stage_io, [StatePair("present", "past", 2)])
