"""Llama-style decoders with the inputs and outputs of a Hugging Face export (input_ids,
attention_mask, position_ids, past_key_values.N.*; logits, present.N.*): RMSNorm, rotary positions,
grouped-query attention, SwiGLU, tied embeddings; deterministic weights, made by code."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeswarm.dev.zoo import GraphBuilder


def _rms_norm(g: GraphBuilder, x: str, d: int) -> str:
    mean = g.op("ReduceMean", [g.op("Pow", [x, g.const("two", np.array(2.0, np.float32))])], axes=[-1])
    root = g.op("Sqrt", [g.op("Add", [mean, g.const("eps", np.array(1e-6, np.float32))])])
    weight = (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32)
    return g.op("Mul", [g.op("Div", [x, root]), g.const("norm_w", weight)])


def _ints(g: GraphBuilder, *values: int) -> str:
    return g.const("ints", np.array(values, np.int64))


def _mask_bias(g: GraphBuilder) -> str:
    """[batch, 1, sequence, total_sequence]: 0 where a query may read a key (not padding, not later),
    -1e9 elsewhere. The new tokens are the last `sequence` of the `total_sequence` positions."""
    scalar = g.const("index", np.array(1, np.int64))
    total = g.op("Gather", [g.op("Shape", ["attention_mask"]), scalar], axis=0)
    seq = g.op("Gather", [g.op("Shape", ["position_ids"]), scalar], axis=0)
    one, zero = g.const("one", np.array(1, np.int64)), g.const("zero", np.array(0, np.int64))
    keys = g.op("Range", [zero, total, one])
    queries = g.op("Unsqueeze", [g.op("Range", [g.op("Sub", [total, seq]), total, one]), _ints(g, 1)])
    padding = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", _ints(g, 1, 2)])], to=TensorProto.BOOL)
    allowed = g.op("And", [g.op("LessOrEqual", [keys, queries]), padding])
    open_, shut = (g.const("bias", np.array(v, np.float32)) for v in (0.0, -1e9))
    return g.op("Where", [allowed, open_, shut])


def _rotary(g: GraphBuilder, dh: int) -> tuple[str, str]:
    """cos and sin [batch, 1, sequence, head_dim] of the rotary embedding at `position_ids`."""
    inv_freq = (1.0 / 10000.0 ** (np.arange(0, dh, 2) / dh)).astype(np.float32)
    positions = g.op("Unsqueeze", [g.op("Cast", ["position_ids"], to=TensorProto.FLOAT), _ints(g, -1)])
    freqs = g.op("Mul", [positions, g.const("inv_freq", inv_freq)])
    angles = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], axis=-1), _ints(g, 1)])
    return g.op("Cos", [angles]), g.op("Sin", [angles])


def _rotate(g: GraphBuilder, x: str, cos: str, sin: str, dh: int) -> str:
    first = g.op("Slice", [x, _ints(g, 0), _ints(g, dh // 2), _ints(g, -1)])
    second = g.op("Slice", [x, _ints(g, dh // 2), _ints(g, dh), _ints(g, -1)])
    rotated = g.op("Concat", [g.op("Neg", [second]), first], axis=-1)
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])])


def _gqa_attention(
    g: GraphBuilder,
    x: str,
    layer: int,
    d: int,
    heads: int,
    kv_heads: int,
    shared: tuple[str, str, str] | None,
) -> str:
    """Rotary, grouped-query attention over past_key_values.<layer>.*; present.<layer>.* are outputs.
    The mask bias and rotary tables are this layer's own, or `shared` (bias, cos, sin)."""
    dh = d // heads
    bias, cos, sin = shared or (_mask_bias(g), *_rotary(g, dh))

    def project(n: int) -> str:
        y = g.op("Reshape", [g.op("MatMul", [x, g.weight("w", (d, n * dh), d)]), _ints(g, 0, 0, n, dh)])
        return g.op("Transpose", [y], perm=[0, 2, 1, 3])

    def repeat(t: str) -> str:  # each key/value head serves heads // kv_heads query heads
        wide = g.op("Expand", [g.op("Unsqueeze", [t, _ints(g, 2)]), _ints(g, 1, 1, heads // kv_heads, 1, 1)])
        return g.op("Reshape", [wide, _ints(g, 0, heads, -1, dh)])

    q, k = (_rotate(g, project(n), cos, sin, dh) for n in (heads, kv_heads))
    v = project(kv_heads)
    past = f"past_key_values.{layer}"
    keys = g.op("Concat", [f"{past}.key", k], out=f"present.{layer}.key", axis=2)
    values = g.op("Concat", [f"{past}.value", v], out=f"present.{layer}.value", axis=2)
    scores = g.op("MatMul", [q, g.op("Transpose", [repeat(keys)], perm=[0, 1, 3, 2])])
    scaled = g.op("Mul", [scores, g.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))])
    probs = g.op("Softmax", [g.op("Add", [scaled, bias])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, repeat(values)])], perm=[0, 2, 1, 3])
    return g.op("MatMul", [g.op("Reshape", [context, _ints(g, 0, 0, d)]), g.weight("w", (d, d), d)])


def _swiglu(g: GraphBuilder, x: str, d: int, d_ff: int) -> str:
    gate = g.op("MatMul", [x, g.weight("w_gate", (d, d_ff), d)])
    up = g.op("MatMul", [x, g.weight("w_up", (d, d_ff), d)])
    act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
    return g.op("MatMul", [act, g.weight("w_down", (d_ff, d), d_ff)])


def tiny_llm(
    layers: int = 4,
    d_model: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    vocab: int = 256,
    d_ff: int = 128,
    seed: int = 0,
    tied: bool = True,
    shared_positions: bool = False,
) -> onnx.ModelProto:
    """A Llama-style decoder with the inputs and outputs of a Hugging Face export.

    Each layer computes its own mask bias and rotary tables from `attention_mask` and `position_ids`,
    so that between layers only the hidden state [batch, sequence, d_model] crosses; with
    `shared_positions` they are computed once, before the first layer, and every layer reads them
    (as Hugging Face's exports do). Embeddings are
    scaled by 0.1: larger, the tied head makes greedy decoding repeat the last token.
    """
    d, dh = d_model, d_model // heads
    if d % heads or heads % kv_heads or dh % 2:
        raise ValueError(f"heads {heads} must split d_model {d} in even halves, kv_heads {kv_heads} heads")
    g = GraphBuilder(seed)
    embedding = g.const("embed", (0.1 * g.rng.standard_normal((vocab, d))).astype(np.float32))
    x = g.op("Gather", [embedding, "input_ids"], axis=0)
    shared = (_mask_bias(g), *_rotary(g, dh)) if shared_positions else None
    for layer in range(layers):
        x = g.op("Add", [x, _gqa_attention(g, _rms_norm(g, x, d), layer, d, heads, kv_heads, shared)])
        x = g.op("Add", [x, _swiglu(g, _rms_norm(g, x, d), d, d_ff)])
    h = _rms_norm(g, x, d)
    head = g.op("Transpose", [embedding], perm=[1, 0]) if tied else g.weight("lm_head", (d, vocab), d)
    ints, floats = TensorProto.INT64, TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("input_ids", ints, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", ints, ["batch", "total_sequence"]),
        helper.make_tensor_value_info("position_ids", ints, ["batch", "sequence"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", floats, ["batch", "sequence", vocab])]
    past: list[str | int] = ["batch", kv_heads, "past_sequence", dh]
    present: list[str | int] = ["batch", kv_heads, "total_sequence", dh]
    for layer in range(layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{layer}.{kind}", floats, past))
            outputs.append(helper.make_tensor_value_info(f"present.{layer}.{kind}", floats, present))
    return g.model("tiny_llm", inputs, outputs, g.op("MatMul", [h, head]))


def builtin_llm() -> onnx.ModelProto:
    """The demo's LLM: 8 layers, width 384, 6 heads (2 of keys and values), 512 tokens: ~51 MB."""
    return tiny_llm(layers=8, d_model=384, heads=6, kv_heads=2, vocab=512, d_ff=1024)
