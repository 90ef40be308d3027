"""The zoo's Llama-style decoder and the reference generation loop that keeps its cache."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeswarm.dev import llm
from edgeswarm.dev.reference import generate_reference, reference_session
from edgeswarm.graph.partition import Graph
from edgeswarm.sampling import Sampling, sample

PROMPT = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return llm.tiny_llm()


def empty_cache(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    return {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }


def run_uncached(session: ort.InferenceSession, ids: list[int]) -> np.ndarray:
    """The last position's logits of the whole sequence, computed from scratch (empty past)."""
    n = len(ids)
    feeds = {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.ones((1, n), np.int64),
        "position_ids": np.arange(n, dtype=np.int64)[None],
        **empty_cache(session),
    }
    logits: np.ndarray = session.run(["logits"], feeds)[0]
    return logits[0, -1]


def run_cached(session: ort.InferenceSession, prompt: list[int], then: list[int]) -> np.ndarray:
    """The last position's logits after the prompt in one run and `then` one token a run."""
    outputs = [o.name for o in session.get_outputs()]
    cache, past, logits = empty_cache(session), 0, np.empty(0)
    for chunk in [prompt, *([t] for t in then)]:
        total = past + len(chunk)
        feeds = {
            "input_ids": np.array([chunk], np.int64),
            "attention_mask": np.ones((1, total), np.int64),
            "position_ids": np.arange(past, total, dtype=np.int64)[None],
            **cache,
        }
        results = dict(zip(outputs, session.run(outputs, feeds), strict=True))
        cache = {n.replace("present.", "past_key_values.", 1): v for n, v in results.items() if n != "logits"}
        past, logits = total, results["logits"][0, -1]
    return logits


def test_the_model_checks_and_has_the_hugging_face_signature(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    inputs = {i.name: i for i in model.graph.input}
    outputs = [o.name for o in model.graph.output]
    assert list(inputs)[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert outputs[0] == "logits"
    for layer in range(4):
        for kind in ("key", "value"):
            past = inputs[f"past_key_values.{layer}.{kind}"].type.tensor_type.shape.dim
            assert [d.dim_param or d.dim_value for d in past] == ["batch", 2, "past_sequence", 16]
            assert f"present.{layer}.{kind}" in outputs


def test_only_the_hidden_state_crosses_between_layers(model: onnx.ModelProto) -> None:
    """Mask bias and rotary tables are made in each layer from the graph inputs, not handed along."""
    g = Graph(model)
    ends = {o: g.made_at[o] for o in g.outputs}
    made_outside = set(g.inputs) | set(g.outputs)
    for layer in range(3):
        start, stop = ends[f"present.{layer}.value"] + 1, ends[f"present.{layer + 1}.key"]
        crossing = [set(g.live_after(p)) - made_outside for p in range(start, stop + 1)]
        hidden = [names.pop() for names in crossing if len(names) == 1]
        assert hidden, f"no cut between layers {layer} and {layer + 1} carries only the hidden state"
        dims = g.infos[hidden[-1]].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims][::2] == ["batch", 64]
    order = [ends[f"present.{layer}.{kind}"] for layer in range(4) for kind in ("key", "value")]
    assert order == sorted(order)  # the nodes come layer by layer


def test_tied_embeddings_share_one_initializer() -> None:
    tied, untied = llm.tiny_llm(layers=1), llm.tiny_llm(layers=1, tied=False)
    tied_count, untied_count = (
        sum(int(np.prod(t.dims)) for t in m.graph.initializer) for m in (tied, untied)
    )
    assert untied_count - tied_count == 256 * 64


def test_greedy_with_the_cache_equals_recomputing_everything(model: onnx.ModelProto) -> None:
    tokens = generate_reference(model, PROMPT, max_tokens=16)
    session = reference_session(model)
    sequence = list(PROMPT)
    for _ in range(16):
        sequence.append(int(np.argmax(run_uncached(session, sequence))))
    assert tokens == sequence[len(PROMPT) :]
    assert len(set(tokens)) > 3  # the weights are not so degenerate that one token repeats


def test_cached_logits_match_uncached_ones(model: onnx.ModelProto) -> None:
    session = reference_session(model)
    then = [17, 200, 3, 99, 42]
    cached = run_cached(session, PROMPT, then)
    np.testing.assert_allclose(cached, run_uncached(session, PROMPT + then), rtol=1e-4, atol=1e-5)


def test_left_padding_changes_nothing_for_the_real_tokens(model: onnx.ModelProto) -> None:
    """Padded keys are masked and positions count real tokens only, as Hugging Face pads."""
    session = reference_session(model)
    feeds = {
        "input_ids": np.array([[0, 0, *PROMPT]], np.int64),
        "attention_mask": np.array([[0, 0, 1, 1, 1, 1, 1]], np.int64),
        "position_ids": np.array([[1, 1, 0, 1, 2, 3, 4]], np.int64),
        **empty_cache(session),
    }
    padded = session.run(["logits"], feeds)[0][0, -1]
    np.testing.assert_allclose(padded, run_uncached(session, PROMPT), rtol=1e-4, atol=1e-5)


def test_sampled_generation_is_reproducible_and_matches_the_uncached_loop(model: onnx.ModelProto) -> None:
    sampling = Sampling(temperature=1.0, top_k=50, top_p=0.95, seed=11)
    tokens = generate_reference(model, PROMPT, max_tokens=10, sampling=sampling)
    assert tokens == generate_reference(model, PROMPT, max_tokens=10, sampling=sampling)
    session = reference_session(model)
    sequence = list(PROMPT)
    for step in range(10):
        sequence.append(sample(run_uncached(session, sequence), sampling, step))
    assert tokens == sequence[len(PROMPT) :]


def test_a_stop_token_ends_the_generation_and_is_returned(model: onnx.ModelProto) -> None:
    tokens = generate_reference(model, PROMPT, max_tokens=16)
    stop = tokens[2]
    until = tokens.index(stop) + 1
    assert generate_reference(model, PROMPT, max_tokens=16, stop_ids={stop}) == tokens[:until]
    assert generate_reference(model, PROMPT, max_tokens=0) == []
    with pytest.raises(ValueError, match="at least one token"):
        generate_reference(model, [], max_tokens=4)
