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


class GraphBuilder:
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
    g = GraphBuilder(seed)
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


def _layer_norm(g: GraphBuilder, x: str, d: int) -> str:
    scale = (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32)
    bias = (0.1 * g.rng.standard_normal(d)).astype(np.float32)
    return g.op("LayerNormalization", [x, g.const("ln_scale", scale), g.const("ln_bias", bias)], axis=-1)


def _attention(g: GraphBuilder, x: str, mask_bias: str, d: int, heads: int) -> str:
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


def _gelu(g: GraphBuilder, x: str) -> str:
    inner = g.op("Erf", [g.op("Div", [x, g.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    one_plus = g.op("Add", [inner, g.const("one", np.array(1.0, np.float32))])
    return g.op("Mul", [g.op("Mul", [x, one_plus]), g.const("half", np.array(0.5, np.float32))])


def transformer_encoder(
    layers: int = 4, d_model: int = 128, heads: int = 4, d_ff: int = 512, seq: int = 32, seed: int = 0
) -> onnx.ModelProto:
    """Pre-norm encoder; the mask becomes one additive bias that every layer's attention reads."""
    g = GraphBuilder(seed)
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


def _cached_attention(g: GraphBuilder, x: str, layer: int, d: int, heads: int) -> str:
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
    g = GraphBuilder(seed)
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


def with_if(seed: int = 0) -> onnx.ModelProto:
    """An If node whose branches read a tensor made outside them, between two MatMul layers."""
    g = GraphBuilder(seed)
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
    g = GraphBuilder(seed)
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


def _conv(g: GraphBuilder, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> str:
    w = g.weight("conv_w", (c_out, c_in, kernel, kernel), c_in * kernel * kernel)
    b = g.const("conv_b", (0.1 * g.rng.standard_normal(c_out)).astype(np.float32))
    pad = kernel // 2
    return g.op("Conv", [x, w, b], kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)


def cnn(
    blocks: int = 4, channels: int = 16, image: int = 32, classes: int = 10, seed: int = 0
) -> onnx.ModelProto:
    """Residual blocks; the middle block halves the resolution and has a strided 1x1 conv on its skip."""
    g = GraphBuilder(seed)
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
