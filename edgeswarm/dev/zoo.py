"""Models built by code with deterministic weights: the demo's encoder and the test zoo.

`identity_chain`, the trivial stage the coordinator times calls with, is re-exported from graph/.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeswarm.graph.trivial import IR_VERSION, OPSET
from edgeswarm.graph.trivial import identity_chain as identity_chain


class _Graph:
    """A small builder: unique names, initializers from numpy, nodes in order."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, prefix: str, shape: tuple[int, ...], fan_in: int) -> str:
        value = self.rng.standard_normal(shape).astype(np.float32) / np.float32(np.sqrt(fan_in))
        return self.const(prefix, value)

    def op(self, op_type: str, inputs: list[str], out: str = "", **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, n_in: int, n_out: int) -> str:
        y = self.op("MatMul", [x, self.weight("w", (n_in, n_out), n_in)])
        bias = (self.rng.standard_normal(n_out) * 0.1).astype(np.float32)
        return self.op("Add", [y, self.const("b", bias)])

    def model(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto], last: str
    ) -> onnx.ModelProto:
        self.nodes.append(helper.make_node("Identity", [last], [outputs[0].name], name="output"))
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeswarm"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def mlp(
    layers: int = 6, width: int = 256, in_features: int = 64, out_features: int = 10, seed: int = 0
) -> onnx.ModelProto:
    g = _Graph(seed)
    x, n = "x", in_features
    for _ in range(layers):
        x, n = g.op("Relu", [g.linear(x, n, width)]), width
    y = g.linear(x, n, out_features)
    return g.model(
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        y,
    )


def _layer_norm(g: _Graph, x: str, d: int) -> str:
    scale = (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32)
    bias = (0.1 * g.rng.standard_normal(d)).astype(np.float32)
    return g.op("LayerNormalization", [x, g.const("ln_scale", scale), g.const("ln_bias", bias)], axis=-1)


def _attention(g: _Graph, x: str, mask_bias: str, d: int, heads: int) -> str:
    dh = d // heads
    split_heads = g.const("heads_shape", np.array([0, 0, heads, dh], dtype=np.int64))
    merge_heads = g.const("merge_shape", np.array([0, 0, d], dtype=np.int64))

    def project(transpose: list[int]) -> str:
        y = g.op("Reshape", [g.linear(x, d, d), split_heads])
        return g.op("Transpose", [y], perm=transpose)

    q = project([0, 2, 1, 3])
    k = project([0, 2, 3, 1])
    v = project([0, 2, 1, 3])
    scores = g.op("Mul", [g.op("MatMul", [q, k]), g.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))])
    probs = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return g.linear(g.op("Reshape", [context, merge_heads]), d, d)


def _gelu(g: _Graph, x: str) -> str:
    inner = g.op("Erf", [g.op("Div", [x, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    one_plus = g.op("Add", [inner, g.const("one", np.array(1.0, np.float32))])
    return g.op("Mul", [g.op("Mul", [x, one_plus]), g.const("half", np.array(0.5, np.float32))])


def transformer_encoder(
    layers: int = 4, d_model: int = 128, heads: int = 4, d_ff: int = 512, seq: int = 32, seed: int = 0
) -> onnx.ModelProto:
    """Pre-norm encoder; the mask becomes one additive bias that every layer's attention reads."""
    g = _Graph(seed)
    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    keep = g.op("Unsqueeze", [mask, g.const("axes", np.array([1, 2], dtype=np.int64))])
    inverted = g.op("Sub", [g.const("one", np.array(1.0, np.float32)), keep])
    mask_bias = g.op("Mul", [inverted, g.const("neg", np.array(-1e4, np.float32))])
    x = "embeddings"
    for _ in range(layers):
        x = g.op("Add", [x, _attention(g, _layer_norm(g, x, d_model), mask_bias, d_model, heads)])
        ff = g.linear(_gelu(g, g.linear(_layer_norm(g, x, d_model), d_model, d_ff)), d_ff, d_model)
        x = g.op("Add", [x, ff])
    return g.model(
        "transformer_encoder",
        [
            helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", seq, d_model]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", seq]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", seq, d_model])],
        _layer_norm(g, x, d_model),
    )


def _cached_attention(g: _Graph, x: str, layer: int, d: int, heads: int) -> str:
    """Self-attention over past keys/values and the new tokens; the concatenations are graph outputs."""
    dh = d // heads
    split_heads = g.const("heads_shape", np.array([0, 0, heads, dh], dtype=np.int64))
    merge_heads = g.const("merge_shape", np.array([0, 0, d], dtype=np.int64))

    def project() -> str:
        return g.op("Transpose", [g.op("Reshape", [g.linear(x, d, d), split_heads])], perm=[0, 2, 1, 3])

    q, k, v = project(), project(), project()
    keys = g.op("Concat", [f"past_key_{layer}", k], out=f"present_key_{layer}", axis=2)
    values = g.op("Concat", [f"past_value_{layer}", v], out=f"present_value_{layer}", axis=2)
    scores = g.op("MatMul", [q, g.op("Transpose", [keys], perm=[0, 1, 3, 2])])
    scaled = g.op("Mul", [scores, g.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))])
    context = g.op("MatMul", [g.op("Softmax", [scaled], axis=-1), values])
    merged = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
    return g.linear(merged, d, d)


def decoder(
    layers: int = 3, d_model: int = 64, heads: int = 4, d_ff: int = 128, seq: int = 4, seed: int = 0
) -> onnx.ModelProto:
    """A decoder step with a key/value cache: past_key/value_<i> in, present_key/value_<i> out, per layer."""
    g = _Graph(seed)
    dh = d_model // heads
    x = "input_embeds"
    for layer in range(layers):
        x = g.op("Add", [x, _cached_attention(g, _layer_norm(g, x, d_model), layer, d_model, heads)])
        ff = g.linear(_gelu(g, g.linear(_layer_norm(g, x, d_model), d_model, d_ff)), d_ff, d_model)
        x = g.op("Add", [x, ff])
    cache: list[str | int] = ["batch", heads, "past", dh]
    total: list[str | int] = ["batch", heads, "total", dh]
    inputs = [helper.make_tensor_value_info("input_embeds", TensorProto.FLOAT, ["batch", seq, d_model])]
    outputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", seq, d_model])]
    for layer in range(layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{layer}", TensorProto.FLOAT, cache))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{layer}", TensorProto.FLOAT, total))
    return g.model("decoder", inputs, outputs, _layer_norm(g, x, d_model))


def _rms_norm(g: _Graph, x: str, d: int) -> str:
    mean = g.op("ReduceMean", [g.op("Pow", [x, g.const("two", np.array(2.0, np.float32))])], axes=[-1])
    root = g.op("Sqrt", [g.op("Add", [mean, g.const("eps", np.array(1e-6, np.float32))])])
    weight = (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32)
    return g.op("Mul", [g.op("Div", [x, root]), g.const("norm_w", weight)])


def _ints(g: _Graph, *values: int) -> str:
    return g.const("ints", np.array(values, np.int64))


def _mask_bias(g: _Graph) -> str:
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


def _rotary(g: _Graph, dh: int) -> tuple[str, str]:
    """cos and sin [batch, 1, sequence, head_dim] of the rotary embedding at `position_ids`."""
    inv_freq = (1.0 / 10000.0 ** (np.arange(0, dh, 2) / dh)).astype(np.float32)
    positions = g.op("Unsqueeze", [g.op("Cast", ["position_ids"], to=TensorProto.FLOAT), _ints(g, -1)])
    freqs = g.op("Mul", [positions, g.const("inv_freq", inv_freq)])
    angles = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], axis=-1), _ints(g, 1)])
    return g.op("Cos", [angles]), g.op("Sin", [angles])


def _rotate(g: _Graph, x: str, cos: str, sin: str, dh: int) -> str:
    first = g.op("Slice", [x, _ints(g, 0), _ints(g, dh // 2), _ints(g, -1)])
    second = g.op("Slice", [x, _ints(g, dh // 2), _ints(g, dh), _ints(g, -1)])
    rotated = g.op("Concat", [g.op("Neg", [second]), first], axis=-1)
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])])


def _gqa_attention(g: _Graph, x: str, layer: int, d: int, heads: int, kv_heads: int) -> str:
    """Rotary, grouped-query attention over past_key_values.<layer>.*; present.<layer>.* are outputs."""
    dh = d // heads
    bias, (cos, sin) = _mask_bias(g), _rotary(g, dh)

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


def _swiglu(g: _Graph, x: str, d: int, d_ff: int) -> str:
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
) -> onnx.ModelProto:
    """A Llama-style decoder with the inputs and outputs of a Hugging Face export.

    Each layer computes its own mask bias and rotary tables from `attention_mask` and `position_ids`,
    so that between layers only the hidden state [batch, sequence, d_model] crosses. Embeddings are
    scaled by 0.1: larger, the tied head makes greedy decoding repeat the last token.
    """
    d, dh = d_model, d_model // heads
    if d % heads or heads % kv_heads or dh % 2:
        raise ValueError(f"heads {heads} must split d_model {d} in even halves, kv_heads {kv_heads} heads")
    g = _Graph(seed)
    embedding = g.const("embed", (0.1 * g.rng.standard_normal((vocab, d))).astype(np.float32))
    x = g.op("Gather", [embedding, "input_ids"], axis=0)
    for layer in range(layers):
        x = g.op("Add", [x, _gqa_attention(g, _rms_norm(g, x, d), layer, d, heads, kv_heads)])
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


def with_if(seed: int = 0) -> onnx.ModelProto:
    """An If node whose branches read a tensor made outside them, between two MatMul layers."""
    g = _Graph(seed)
    h = g.op("Relu", [g.linear("x", 8, 8)])
    total = g.op("ReduceSum", ["x"], keepdims=0)
    cond = g.op("Greater", [total, g.const("zero", np.array(0.0, np.float32))])
    then_graph = helper.make_graph(
        [helper.make_node("Add", [h, h], ["then_out"])], "then", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["batch", 8])],
    )  # fmt: skip
    else_graph = helper.make_graph(
        [helper.make_node("Mul", [h, h], ["else_out"])], "else", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["batch", 8])],
    )  # fmt: skip
    branch = g.op("If", [cond], then_branch=then_graph, else_branch=else_graph)
    return g.model(
        "with_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        g.linear(branch, 8, 8),
    )


def tied(seed: int = 0, width: int = 16) -> onnx.ModelProto:
    """One weight read by the first and the last MatMul (tied embeddings, in miniature)."""
    g = _Graph(seed)
    weight = g.weight("tied", (width, width), width)
    h = g.op("MatMul", ["x", weight])
    for _ in range(3):
        h = g.op("Tanh", [g.linear(h, width, width)])
    return g.model(
        "tied",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        g.op("MatMul", [h, weight]),
    )


def _conv(g: _Graph, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> str:
    w = g.weight("conv_w", (c_out, c_in, kernel, kernel), c_in * kernel * kernel)
    b = g.const("conv_b", (0.1 * g.rng.standard_normal(c_out)).astype(np.float32))
    pad = kernel // 2
    return g.op("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)


def cnn(
    blocks: int = 4, channels: int = 16, image: int = 32, classes: int = 10, seed: int = 0
) -> onnx.ModelProto:
    """Residual blocks; the middle block halves the resolution and has a strided 1x1 conv on its skip."""
    g = _Graph(seed)
    x = g.op("Relu", [_conv(g, "image", 3, channels, 3)])
    c = channels
    for i in range(blocks):
        down = i == blocks // 2
        stride, c_out = (2, c * 2) if down else (1, c)
        y = g.op("Relu", [_conv(g, x, c, c_out, 3, stride)])
        y = _conv(g, y, c_out, c_out, 3)
        skip = _conv(g, x, c, c_out, 1, stride) if down else x
        x, c = g.op("Relu", [g.op("Add", [y, skip])]), c_out
    flat = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    logits = g.op(
        "Gemm", [flat, g.weight("fc_w", (c, classes), c), g.const("fc_b", np.zeros(classes, np.float32))]
    )
    return g.model(
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, image, image])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        logits,
    )


def dtypes() -> onnx.ModelProto:
    """One input and one output of each KServe datatype the swarm carries; one node per output.

    Cut into stages, outputs made early must be handed along to the end.
    """
    kinds = [
        ("half", TensorProto.FLOAT16, "Add"),
        ("i32", TensorProto.INT32, "Mul"),
        ("i8", TensorProto.INT8, "Neg"),
        ("u8", TensorProto.UINT8, "Identity"),
        ("flag", TensorProto.BOOL, "Not"),
        ("i64", TensorProto.INT64, "Add"),
        ("f32", TensorProto.FLOAT, "Mul"),
    ]
    nodes, inputs, outputs = [], [], []
    for name, elem, op in kinds:
        arity = 2 if op in ("Add", "Mul") else 1
        nodes.append(helper.make_node(op, [f"{name}_in"] * arity, [f"{name}_out"], name=name))
        inputs.append(helper.make_tensor_value_info(f"{name}_in", elem, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(f"{name}_out", elem, ["batch", 3]))
    graph = helper.make_graph(nodes, "dtypes", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeswarm"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def builtin_model() -> onnx.ModelProto:
    """The demo's model: a 6-layer encoder, d_model 384, about 42 MB of float32 weights."""
    return transformer_encoder(layers=6, d_model=384, heads=6, d_ff=1536, seq=64)
