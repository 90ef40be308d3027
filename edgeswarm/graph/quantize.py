"""Quantizing a model with ONNX Runtime's own quantizers, as `edgeswarm quantize` writes it and a
deploy with `--quantize` places it (the same function, so a local session on the written file is
the reference for the swarm's outputs).

    int8  onnxruntime.quantization.quantize_dynamic: MatMul and Gemm weights to signed 8-bit, one
          scale per tensor, activations quantized at run time (DynamicQuantizeLinear). Convolutions
          stay float: ONNX Runtime's ConvInteger is slow on CPU and costs accuracy.
    int4  MatMulNBitsQuantizer: MatMul weights to 4 bits in blocks of 32 along the reduced axis,
          symmetric, into ONNX Runtime's MatMulNBits contrib op; activations stay float.

CPU-bound: run it in a thread.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from edgeswarm.errors import InvalidRequest
from edgeswarm.graph.loading import parse_model
from edgeswarm.plans import Quantization

INT4_BLOCK = 32
INT8_OPS = ("MatMul", "Gemm")


def quantize(model: onnx.ModelProto, method: Quantization) -> onnx.ModelProto:
    """`model` quantized by `method` (the argument is left as it was)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if method is Quantization.INT8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "quantized.onnx"
            quantize_dynamic(copy, out, op_types_to_quantize=list(INT8_OPS), weight_type=QuantType.QInt8)
            return onnx.load(str(out))
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(copy, block_size=INT4_BLOCK, is_symmetric=True)
    quantizer.process()
    quantized: onnx.ModelProto = quantizer.model.model
    return quantized


def quantized_stage(name: str, path: Path, method: Quantization) -> bytes:
    """One stage of model `name`, read with its external data from `path`, quantized by `method`.
    Quantizing a model stage by stage gives the stages of the model quantized whole: each weight is
    quantized on its own, and an activation's run-time quantization is the same wherever it runs."""
    model = onnx.load(str(path))
    try:
        return quantize(model, method).SerializeToString()
    except Exception as exc:  # ONNX Runtime's quantizers raise what their graph walk meets
        raise InvalidRequest(f"model {name!r} cannot be quantized to {method}: {exc}") from exc


def quantized(name: str, data: bytes, method: Quantization) -> bytes:
    """The model `name` sent as `data`, checked and quantized by `method`: what a deploy with
    `--quantize` places. InvalidRequest when it is no valid model or cannot be quantized."""
    model = parse_model(name, data)
    try:
        return quantize(model, method).SerializeToString()
    except Exception as exc:  # ONNX Runtime's quantizers raise what their graph walk meets
        raise InvalidRequest(f"model {name!r} cannot be quantized to {method}: {exc}") from exc
