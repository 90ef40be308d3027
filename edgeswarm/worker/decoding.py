"""A generation's step at one stage: the session's state from this worker, the position inputs built
from its length, the new tokens (or their hidden states) from the wire; the last stage samples.

Only what the next stage reads crosses a hop: state outputs stay here for the next step, and
`attention_mask` (ones over past + new) and `position_ids` (past .. past + new) are rebuilt by every
stage that reads them, so the bytes per hop do not grow with the context.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import numpy as np

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.errors import InvalidRequest, NotFound, StageUnavailable
from edgeswarm.graph.decoder import ATTENTION_MASK, LOGITS, POSITION_IDS
from edgeswarm.metrics import SESSION_HOP_BYTES, SESSION_HOP_STEPS
from edgeswarm.sampling import Sampling, sample
from edgeswarm.security import routes
from edgeswarm.worker.ring import Rings
from edgeswarm.worker.runtime import StageRuntime
from edgeswarm.worker.sessions import SessionStore
from edgeswarm.worker.wire_runs import hand_on

log = logging.getLogger(__name__)

Forward = Callable[[worker_pb2.StageRequest, float | None], Awaitable[bytes]]


def sampling_of(message: worker_pb2.Sampling) -> Sampling:
    return Sampling(
        temperature=message.temperature,
        top_k=message.top_k,
        top_p=message.top_p or 1.0,
        seed=message.seed if message.seeded else None,
    )


class Decoding:
    def __init__(self, runtime: StageRuntime, store: SessionStore, rings: Rings | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.rings = rings
        self.draining = ""  # this worker's id once it is draining

    def drain(self, worker_id: str) -> None:
        """This worker is leaving: its sessions move now (a step here, a ring from here, is refused as
        UNAVAILABLE naming it), rather than when it is gone."""
        self.draining = worker_id
        if self.rings is not None:
            self.rings.end_all(self._leaving())

    def _leaving(self) -> StageUnavailable:
        return StageUnavailable(
            f"worker {self.draining[:8]} is draining: its sessions move", (self.draining,)
        )

    async def step(
        self, request: worker_pb2.StageRequest, timeout: float | None, forward: Forward
    ) -> worker_pb2.StageResponse | bytes:
        if self.draining:
            raise self._leaving()
        hop, rest = request.route[0], request.route[1:]
        step = request.session
        if step.length < 1 or step.position < 0:
            raise InvalidRequest(f"session {step.id[:12]}: a step adds at least one token at position >= 0")
        pairs = {p.input: p for p in hop.states}
        if step.position == 0:
            state = self._empty(hop.stage, pairs)
            log.info(
                "session_started session=%s model=%s stage=%s prompt_tokens=%d",
                step.id[:12], request.model, hop.stage[:12], step.length,
            )  # fmt: skip
        else:
            held = self.store.get(step.id, hop.stage)
            if held is None or held.position != step.position:
                at = "none" if held is None else f"{held.position} tokens"
                raise NotFound(
                    f"session {step.id[:12]} has no state of {step.position} tokens at stage "
                    f"{hop.stage[:12]} here ({at}): replay it"
                )
            state = dict(held.tensors)
        received = {t.name: t for t in request.tensors}
        feeds: dict[str, np.ndarray] = {}
        for name in self.runtime.inputs(hop.stage):
            if name in pairs:
                feeds[name] = state[name]
            elif name == ATTENTION_MASK:
                feeds[name] = np.ones((1, step.position + step.length), np.int64)
            elif name == POSITION_IDS:
                feeds[name] = np.arange(step.position, step.position + step.length, dtype=np.int64)[None]
            elif name in received:
                feeds[name] = codec.decode(received[name])
            else:
                raise InvalidRequest(f"session step at stage {hop.stage[:12]} is missing input {name}")
        carry = [c for c in hop.carry if c not in {p.output for p in hop.states}]
        made = set(self.runtime.outputs(hop.stage))
        outputs = [*(c for c in carry if c in made), *(p.output for p in hop.states)]
        produced = await self.runtime.run_arrays(hop.stage, feeds, outputs, timeout)
        values = dict(zip(outputs, produced, strict=True))
        kept = {p.input: values[p.output] for p in hop.states}
        self.store.put(step.id, hop.stage, kept, step.position + step.length)
        if not rest:
            logits = values.get(LOGITS)
            if logits is None or logits.ndim != 3:
                raise InvalidRequest(
                    f"the last stage of {request.model!r} has no output logits [batch, seq, vocab]"
                )
            token = sample(logits[0, -1], sampling_of(step.sampling), step.step)
            if step.ring:
                if self.rings is None:
                    raise InvalidRequest("this worker runs no rings")
                self.rings.sampled(step, token, request)
            return worker_pb2.StageResponse(token=token)
        handed_on = hand_on(hop.stage, carry, values, received)
        SESSION_HOP_BYTES.labels(request.model).inc(sum(codec.declared_bytes(t) for t in handed_on))
        SESSION_HOP_STEPS.labels(request.model).inc()
        onward = worker_pb2.StageRequest(
            request_id=request.request_id,
            model=request.model,
            tensors=handed_on,
            route=rest,
            route_macs=routes.onward_macs(request),
            session=step,
        )
        return await forward(onward, timeout)

    def _empty(self, stage: str, pairs: dict[str, worker_pb2.StatePair]) -> dict[str, np.ndarray]:
        """Each state input with no tokens yet: zero along its sequence axis, batch 1."""
        empty = {}
        for spec in self.runtime.input_specs(stage):
            pair = pairs.get(spec.name)
            if pair is None:
                continue
            shape = []
            for axis, dim in enumerate(spec.shape):
                if axis == pair.axis:
                    shape.append(0)
                elif isinstance(dim, int):
                    shape.append(dim)
                elif axis == 0:
                    shape.append(1)
                else:
                    raise InvalidRequest(f"state input {spec.name} has a dimension {dim!r} no step tells")
            datatype = codec.by_onnx_name(spec.type.removeprefix("tensor(").removesuffix(")").upper())
            if datatype is None:
                raise InvalidRequest(
                    f"state input {spec.name} is of a type the swarm does not carry: {spec.type}"
                )
            empty[spec.name] = np.zeros(shape, datatype.dtype)
        return empty
