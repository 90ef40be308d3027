"""The answer a deployed model must give: one ONNX Runtime session on the whole model, with the
workers' session options (graph optimization "basic", no spinning). Outputs of any split or replica
layout are bit-for-bit equal to this session's; a session with ONNX Runtime's defaults (optimization
"all") may differ from it in the last bits, as fusions differ between a stage and the whole graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgeswarm.config import Optimization
from edgeswarm.worker.runtime import session_options


def reference_session(model: str | Path | onnx.ModelProto) -> ort.InferenceSession:
    """One session on the whole model as a worker would open it, with one thread."""
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(
        source, session_options(1, Optimization.BASIC), providers=["CPUExecutionProvider"]
    )


def reference(model: str | Path | onnx.ModelProto, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The whole model's outputs on `inputs`, by name."""
    session = reference_session(model)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))
