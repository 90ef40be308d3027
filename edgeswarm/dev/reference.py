"""The answer a deployed model must give: one ONNX Runtime session on the whole model, with the
workers' session options (graph optimization "basic", no spinning). Outputs of any split or replica
layout are bit-for-bit equal to this session's; a session with ONNX Runtime's defaults (optimization
"all") may differ from it in the last bits, as fusions differ between a stage and the whole graph."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgeswarm.config import Optimization
from edgeswarm.sampling import GREEDY, Sampling, sample, stopped
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


def generate_reference(
    model: str | Path | onnx.ModelProto,
    prompt: Sequence[int],
    max_tokens: int,
    sampling: Sampling = GREEDY,
    stop_ids: Collection[int] = (),
    step_seconds: list[float] | None = None,
) -> list[int]:
    """The tokens a distributed generation must give: one session keeping its own cache (the
    seconds of each run appended to `step_seconds`, the session's opening not counted).

    The prompt goes in one run on an empty cache, then one run per token; each run's present.N.*
    outputs are the next run's past_key_values.N.* inputs. A token in `stop_ids` ends the generation
    and is returned with the others; the prompt is not.
    """
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    session = reference_session(model)
    declared = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    cache = {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }
    generated: list[int] = []
    ids, past = np.array([list(prompt)], np.int64), 0
    while len(generated) < max_tokens and not stopped(generated, stop_ids):
        total = past + ids.shape[1]
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones((1, total), np.int64),
            "position_ids": np.arange(past, total, dtype=np.int64)[None],
            **cache,
        }
        started = time.perf_counter()
        values = session.run(outputs, {name: value for name, value in feeds.items() if name in declared})
        if step_seconds is not None:
            step_seconds.append(time.perf_counter() - started)
        results = dict(zip(outputs, values, strict=True))
        generated.append(sample(results["logits"][0, -1], sampling, len(generated)))
        cache = {
            "past_key_values." + name.removeprefix("present."): value
            for name, value in results.items()
            if name.startswith("present.")
        }
        ids, past = np.array([[generated[-1]]], np.int64), total
    return generated
