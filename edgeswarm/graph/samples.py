"""Sample inputs for a model, chosen from its graph's declared element types and shapes alone.

Used to time a model's segments at deploy and to plan it; nothing is read from a tensor's name.
Floats are standard normal; booleans and integers are 0 or 1, the one range that is valid for any
integer input (token ids of any vocabulary, positions, masks). Symbolic dimensions take `batch`.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from edgeswarm.graph.signature import datatype_of

# Most bytes of sample inputs a model may declare (a declared shape of [2**27] would take 512 MiB).
MAX_SAMPLE_BYTES = 256 * 1024 * 1024


def sample_inputs(
    model: onnx.ModelProto, batch: int = 1, seed: int = 0, max_bytes: int = MAX_SAMPLE_BYTES
) -> dict[str, np.ndarray]:
    """Deterministic random values for each declared input that is not an initializer; ValueError,
    before any is made, when they would take more than `max_bytes` (or a dimension is negative)."""
    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    shapes = {}
    total = 0
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        known = datatype_of(tensor.elem_type)
        if known is None:
            raise ValueError(f"input {value.name!r} has an element type the swarm cannot carry")
        shape = tuple(d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim)
        if any(d < 0 for d in shape):
            raise ValueError(f"input {value.name!r} declares a negative dimension: {list(shape)}")
        total += math.prod(shape) * known.dtype.itemsize
        if total > max_bytes:
            raise ValueError(
                f"sample inputs would take over {max_bytes} bytes (input {value.name!r} is {list(shape)} "
                f"{known.name}): give the model smaller static shapes, or deploy it with a fixed "
                "--mode pipeline or replicas"
            )
        shapes[value.name] = (shape, known)
    out: dict[str, np.ndarray] = {}
    for name, (shape, known) in shapes.items():
        if known.dtype.kind == "f":
            out[name] = rng.standard_normal(shape).astype(known.dtype)
        else:
            out[name] = rng.integers(0, 2, shape).astype(known.dtype)
    return out
