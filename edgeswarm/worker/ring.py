"""Generations run as a ring from the worker of their last stage (prima.cpp's piped ring).

The coordinator opens RingSession on the last stage's worker. That worker sends the first step to
the first stage; each stage runs it and hands on to the next; the last samples, puts the token on
the ring's stream to the coordinator, and sends the next step straight to the first stage. Per
token that is the stages' compute plus K hops, where answering each token back along the route and
sending the next from the coordinator costs 2K + 2. The answers of the route's calls (a small ack)
unwind meanwhile, off the token's path.

A failure anywhere on the route reaches the call that sent the step, which ends the ring's stream
with it; the coordinator then replays the session on another route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.errors import EdgeswarmError, InternalError, InvalidRequest, NotFound
from edgeswarm.graph.decoder import TOKEN_INPUT

log = logging.getLogger(__name__)

Forward = Callable[[worker_pb2.StageRequest, float | None], Awaitable[bytes]]


@dataclass
class _Ring:
    start: worker_pb2.RingStart
    deadline: float | None
    tokens: asyncio.Queue[worker_pb2.RingToken | EdgeswarmError] = field(default_factory=asyncio.Queue)
    sending: set[asyncio.Task[None]] = field(default_factory=set)


class Rings:
    def __init__(self, forward: Forward, clock: Callable[[], float] = time.monotonic) -> None:
        self.forward = forward
        self.clock = clock
        self._rings: dict[str, _Ring] = {}

    async def run(
        self, start: worker_pb2.RingStart, timeout: float | None
    ) -> AsyncIterator[worker_pb2.RingToken]:
        """The ring's new tokens as the last stage (this worker's) samples them."""
        first = start.first
        if not first.HasField("session") or not first.route:
            raise InvalidRequest("RingSession needs a first step with a session and a route")
        session = first.session.id
        if session in self._rings:
            raise InvalidRequest(f"session {session[:12]} already runs a ring here")
        ring = _Ring(start, None if timeout is None else self.clock() + timeout)
        self._rings[session] = ring
        log.info("ring_started session=%s model=%s stages=%d known=%d", session[:12], first.model,
                 len(first.route), len(start.known))  # fmt: skip
        try:
            self._send(ring, first)
            while True:
                item = await ring.tokens.get()
                if isinstance(item, EdgeswarmError):
                    raise item
                yield item
                if item.last:
                    return
        finally:
            del self._rings[session]
            for task in ring.sending:
                task.cancel()

    def sampled(self, step: worker_pb2.SessionStep, token: int, request: worker_pb2.StageRequest) -> None:
        """The last stage sampled `token` at `step` of a ring of this worker's: it goes on the ring's
        stream (unless a replayed step), and the next step to the first stage."""
        ring = self._rings.get(step.id)
        if ring is None:
            raise NotFound(f"session {step.id[:12]} has no ring on this worker (it ended, or moved)")
        start, index = ring.start, step.step
        if index < len(start.known) and token != start.known[index]:
            error = InternalError(
                f"replaying session {step.id[:12]} gave token {token} at step {index}, not "
                f"{start.known[index]}: a worker on the route broke its contract"
            )
            ring.tokens.put_nowait(error)
            return
        last = token in start.stop_ids or index + 1 >= start.max_tokens
        if index >= len(start.known) or last:
            ring.tokens.put_nowait(worker_pb2.RingToken(token=token, last=last))
        if last:
            return
        following = worker_pb2.SessionStep()
        following.CopyFrom(step)
        following.position, following.length, following.step = step.position + step.length, 1, index + 1
        # The same route and signatures as the first step: they cover the session, not its position.
        self._send(
            ring,
            worker_pb2.StageRequest(
                request_id=start.first.request_id,
                model=request.model,
                tensors=[codec.encode(TOKEN_INPUT, np.array([[token]], np.int64))],
                route=start.first.route,
                route_macs=start.first.route_macs,
                session=following,
            ),
        )

    def end_all(self, error: EdgeswarmError) -> None:
        """Ends every ring running here with `error` (this worker is draining)."""
        for ring in self._rings.values():
            ring.tokens.put_nowait(error)

    def _send(self, ring: _Ring, request: worker_pb2.StageRequest) -> None:
        """Sends `request` to the first stage; a failure there or further on ends the ring with it."""

        async def send() -> None:
            try:
                remaining = None if ring.deadline is None else ring.deadline - self.clock()
                await self.forward(request, remaining)
            except EdgeswarmError as exc:
                ring.tokens.put_nowait(exc)

        task = asyncio.ensure_future(send())
        ring.sending.add(task)
        task.add_done_callback(ring.sending.discard)
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.error("ring_send_failed", exc_info=task.exception())
