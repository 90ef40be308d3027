"""One ONNX Runtime call on wire tensors: decode what the stage reads, run, encode what goes on;
or several requests stacked along their batch dimension as one call, where their inputs allow."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.errors import InvalidRequest
from edgeswarm.metrics import BATCHES, STAGE_SECONDS

log = logging.getLogger(__name__)


def run_wire(
    sha256: str,
    session: ort.InferenceSession,
    tensors: Sequence[tensor_pb2.Tensor],
    carry: Sequence[str],
    options: ort.RunOptions | None = None,
) -> list[tensor_pb2.Tensor]:
    received = {t.name: t for t in tensors}
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in received]
    if missing:
        raise InvalidRequest(f"stage {sha256[:12]} is missing input(s) {', '.join(missing)}")
    feeds = {n: codec.decode(received[n]) for n in names}
    outputs = [o.name for o in session.get_outputs()]
    start = time.perf_counter()
    try:
        values = session.run(outputs, feeds, options)
    except Exception as exc:  # ORT reports bad feeds (shape, type) as its own exception types
        raise InvalidRequest(f"ONNX Runtime rejected the inputs: {exc}") from exc
    STAGE_SECONDS.labels(sha256[:12]).observe(time.perf_counter() - start)
    return hand_on(sha256, carry, dict(zip(outputs, values, strict=True)), received)


def hand_on(
    sha256: str,
    carry: Sequence[str],
    produced: Mapping[str, np.ndarray],
    received: Mapping[str, tensor_pb2.Tensor],
) -> list[tensor_pb2.Tensor]:
    """The `carry` tensors: what the stage produced, encoded; anything else as it was received."""
    handed_on = []
    for name in carry:
        if name in produced:
            handed_on.append(codec.encode(name, produced[name]))
        elif name in received:
            handed_on.append(received[name])
        else:
            raise InvalidRequest(f"stage {sha256[:12]} produced no tensor {name}")
    return handed_on


def run_batch(
    sha256: str,
    session: ort.InferenceSession,
    requests: Sequence[tuple[Sequence[tensor_pb2.Tensor], Sequence[str]]],
) -> list[list[tensor_pb2.Tensor]]:
    def one_by_one() -> list[list[tensor_pb2.Tensor]]:
        return [run_wire(sha256, session, tensors, carry) for tensors, carry in requests]

    names = [i.name for i in session.get_inputs()]
    if len(requests) == 1 or any(isinstance(i.shape[0] if i.shape else 1, int) for i in session.get_inputs()):
        return one_by_one()  # a single request, or an input without a symbolic batch dimension
    received = [{t.name: t for t in tensors} for tensors, _ in requests]
    if any(n not in r for r in received for n in names):
        return one_by_one()  # the per-request path names what is missing
    decoded = [{n: codec.decode(r[n]) for n in names} for r in received]
    sizes = [d[names[0]].shape[0] if d[names[0]].ndim else 0 for d in decoded]
    for n in names:
        first = decoded[0][n]
        for d, size in zip(decoded, sizes, strict=True):
            if (
                d[n].ndim == 0
                or d[n].shape[0] != size
                or d[n].shape[1:] != first.shape[1:]
                or d[n].dtype != first.dtype
            ):
                return one_by_one()
    feeds = {n: np.concatenate([d[n] for d in decoded]) for n in names}
    outputs = [o.name for o in session.get_outputs()]
    start = time.perf_counter()
    try:
        values = session.run(outputs, feeds)
    except Exception:  # ORT's own exception types: let each request meet its own error
        return one_by_one()
    STAGE_SECONDS.labels(sha256[:12]).observe(time.perf_counter() - start)
    total = sum(sizes)
    if any(v.ndim == 0 or v.shape[0] != total for v in values):
        return one_by_one()
    log.debug("batch_ran stage=%s requests=%d rows=%d", sha256[:12], len(requests), total)
    BATCHES.observe(len(requests))
    results = []
    offset = 0
    for (_, carry), r, size in zip(requests, received, sizes, strict=True):
        produced = {o: v[offset : offset + size] for o, v in zip(outputs, values, strict=True)}
        offset += size
        results.append(hand_on(sha256, carry, produced, r))
    return results
