"""Sample inputs for a model, chosen from its graph's declared element types and shapes alone.

Used to time a model's segments at deploy and to plan it; nothing is read from a tensor's name.
Floats are standard normal; booleans and integers are 0 or 1, the one range that is valid for any
integer input (token ids of any vocabulary, positions, masks). Symbolic dimensions take `batch`.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgeswarm.graph.signature import datatype_of


def sample_inputs(model: onnx.ModelProto, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random values for each declared input that is not an initializer."""
    rng = np.random.default_rng(seed)
    initializers = {i.name for i in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        known = datatype_of(tensor.elem_type)
        if known is None:
            raise ValueError(f"input {value.name!r} has an element type the swarm cannot carry")
        shape = tuple(d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim)
        if known.dtype.kind == "f":
            out[value.name] = rng.standard_normal(shape).astype(known.dtype)
        else:
            out[value.name] = rng.integers(0, 2, shape).astype(known.dtype)
    return out
