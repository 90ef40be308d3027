"""Generations over a decoder's plan: one session per generation, its state on the route's workers.

A step sends only the new tokens into the first stage; each stage keeps its state pairs for the
session, and the last samples the next token (edgeswarm/sampling.py). When a worker on the route is
lost, the session goes on on another route: it is replayed there step by step as it ran (the prompt
in one pass, then one step per token already generated), which rebuilds each stage's state to the
same bits, so no token is missed, repeated or changed. A replayed step must sample the token it
sampled the first time; one that does not is a broken contract (InternalError), not a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.serving.route_choice import RouteHop, choose_route
from edgeswarm.coordinator.serving.router import FleetState, Transport
from edgeswarm.errors import DeadlineExceeded, InternalError, InvalidRequest, NotFound, StageUnavailable
from edgeswarm.graph.decoder import LOGITS, POSITION_INPUTS, TOKEN_INPUT
from edgeswarm.plans import Plan
from edgeswarm.sampling import Sampling
from edgeswarm.security import routes

log = logging.getLogger(__name__)

# Most routes one generation may move to before it gives up, and the wait between looks for one
# while none is usable.
MAX_ROUTES = 8
ROUTE_RETRY_S = 0.2


Ring = Callable[[str, worker_pb2.RingStart, float], AsyncIterator[worker_pb2.RingToken]]


@dataclass(frozen=True)
class GenerateParams:
    prompt: tuple[int, ...]
    max_tokens: int
    sampling: Sampling
    stop_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Token:
    token_id: int
    # Set on the last token: "stop" (a stop token) or "length" (max_tokens).
    finish_reason: str = ""


class Generator:
    def __init__(
        self,
        fleet: FleetState,
        transport: Transport,
        end_session: Callable[[str, str], None],
        ring: Ring | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet = fleet
        self.transport = transport
        # Streams a ring's tokens from the worker of its last stage; None: every token is answered
        # back along the route instead (the relay, kept to measure the ring against).
        self.ring = ring
        self.end_session = end_session  # (worker id, session id): drop its state there
        self.clock = clock
        # Each session's route now: its workers, and an event set when one of them is lost.
        self._routes: dict[str, tuple[frozenset[str], asyncio.Event, list[str]]] = {}

    async def generate(
        self, plan: Plan, params: GenerateParams, timeout: float
    ) -> AsyncGenerator[Token, None]:
        if not plan.states:
            raise InvalidRequest(f"model {plan.model!r} is not a decoder: no output feeds an input")
        if not params.prompt:
            raise InvalidRequest("a generation needs a prompt of at least one token")
        if params.max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be at least 1, not {params.max_tokens}")
        sampling = params.sampling
        if not sampling.greedy and sampling.seed is None:
            # A seed of its own, so that a replay after a failover draws what the first run drew.
            sampling = replace(sampling, seed=secrets.randbits(63))
        deadline = self.clock() + timeout
        session = uuid.uuid4().hex
        generated: list[int] = []
        held: set[str] = set()
        routes_tried = 0
        try:
            while True:
                route = await self._route_within(plan, deadline)
                routes_tried += 1
                held.update(hop.workers[0] for hop in route)
                if self.ring is not None:
                    made = self._ringed(plan, route, session, params, generated, sampling, deadline)
                else:
                    made = self._relayed(plan, route, session, params, generated, sampling, deadline)
                lost: list[str] = []
                self._routes[session] = (frozenset(hop.workers[0] for hop in route), asyncio.Event(), lost)
                tokens = self._until_lost(made, self._routes[session][1], lost)
                try:
                    async for token in tokens:
                        generated.append(token)
                        reason = self._finished(generated, params)
                        yield Token(token, reason)
                        if reason:
                            return
                except (StageUnavailable, NotFound) as exc:
                    if routes_tried >= MAX_ROUTES:
                        raise StageUnavailable(
                            f"session {session[:12]}: gave up after {routes_tried} routes: {exc.message}"
                        ) from exc
                    failed = exc.failed if isinstance(exc, StageUnavailable) else ()
                    for worker in failed:
                        self.fleet.ban(worker)
                    log.warning(
                        "session_moved session=%s model=%s tokens=%d failed=%s error=%r",
                        session[:12],
                        plan.model,
                        len(generated),
                        ",".join(w[:8] for w in failed),
                        exc.message,
                    )
                finally:
                    await tokens.aclose()
                    await made.aclose()
        finally:
            self._routes.pop(session, None)
            for worker in held:
                with contextlib.suppress(Exception):
                    self.end_session(worker, session)

    async def _relayed(
        self,
        plan: Plan,
        route: tuple[RouteHop, ...],
        session: str,
        params: GenerateParams,
        generated: Sequence[int],
        sampling: Sampling,
        deadline: float,
    ) -> AsyncGenerator[int, None]:
        """The new tokens of a session on `route`, each step sent from here and its token answered
        back along the route (2K + 2 hops a token). A route taken over mid-session is first replayed
        to the tokens `generated` already."""
        fed = 0  # tokens this route's state holds
        while True:
            request = self._step_request(plan, route, session, params.prompt, generated, fed, sampling)
            token = await self._run(plan, route, request, len(generated), deadline)
            fed = len(params.prompt) if fed == 0 else fed + 1
            index = fed - len(params.prompt)  # the token this step sampled
            if index >= len(generated):
                yield token
            elif token != generated[index]:
                raise InternalError(
                    f"replaying session {session[:12]} gave token {token} at step {index}, "
                    f"not {generated[index]}: a worker on the route broke its contract"
                )

    async def _ringed(
        self,
        plan: Plan,
        route: tuple[RouteHop, ...],
        session: str,
        params: GenerateParams,
        generated: Sequence[int],
        sampling: Sampling,
        deadline: float,
    ) -> AsyncGenerator[int, None]:
        """The new tokens of a session on `route`, run as a ring from its last stage's worker (K hops
        a token; edgeswarm/worker/ring.py), which replays the tokens `generated` already."""
        assert self.ring is not None
        first = self._step_request(plan, route, session, params.prompt, generated, 0, sampling)
        first.session.ring = True
        start = worker_pb2.RingStart(
            first=routes.sign_route(first),
            known=list(generated),
            max_tokens=params.max_tokens,
            stop_ids=sorted(params.stop_ids),
        )
        last = route[-1].workers[0]
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise DeadlineExceeded(f"model {plan.model!r}: the generation's deadline passed")
        try:
            async for token in self.ring(last, start, remaining):
                yield int(token.token)
        except StageUnavailable as exc:
            # A stream that broke without naming who failed: the ring's own worker went away.
            raise StageUnavailable(exc.message, exc.failed or (last,)) from exc

    def abandon(self, worker_id: str) -> None:
        """`worker_id` is lost (killed, frozen, cut off): the sessions routed through it move now,
        instead of waiting on a step it will never answer."""
        for workers, event, lost in self._routes.values():
            if worker_id in workers and not event.is_set():
                lost.append(worker_id)
                event.set()

    @staticmethod
    async def _until_lost(
        tokens: AsyncGenerator[int, None], lost: asyncio.Event, who: list[str]
    ) -> AsyncGenerator[int, None]:
        """`tokens` until `lost` is set: then StageUnavailable naming the worker that was lost."""
        waiter = asyncio.ensure_future(lost.wait())
        step: asyncio.Future[int] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(tokens))
                await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    raise StageUnavailable(f"worker {who[0][:8]} was lost holding the session", tuple(who))
                try:
                    token = step.result()
                except StopAsyncIteration:
                    return
                yield token
        finally:
            waiter.cancel()
            if step is not None and not step.done():
                # Its stream's call is cancelled, and `tokens` is idle again, before anyone closes it.
                step.cancel()
                await asyncio.wait({step})

    @staticmethod
    def _finished(generated: Sequence[int], params: GenerateParams) -> str:
        if generated[-1] in params.stop_ids:
            return "stop"
        return "length" if len(generated) >= params.max_tokens else ""

    async def _route_within(self, plan: Plan, deadline: float) -> tuple[RouteHop, ...]:
        """A route for the session; while a stage has no usable worker (its replicas banned for a
        moment, or lost until the model is re-planned), tried again until the deadline."""
        while True:
            try:
                return choose_route(plan, self.fleet.live(), self.fleet.banned, self.fleet.in_flight)
            except StageUnavailable:
                if self.clock() + ROUTE_RETRY_S >= deadline:
                    raise
            await asyncio.sleep(ROUTE_RETRY_S)

    def _step_request(
        self,
        plan: Plan,
        route: tuple[RouteHop, ...],
        session: str,
        prompt: Sequence[int],
        generated: Sequence[int],
        fed: int,
        sampling: Sampling,
    ) -> worker_pb2.StageRequest:
        """The next step on `route`, whose state holds `fed` tokens: the prompt when it holds none,
        else the generated token after them."""
        if fed == 0:
            ids, step = list(prompt), 0
        else:
            index = fed - len(prompt)
            ids, step = [generated[index]], index + 1
        return worker_pb2.StageRequest(
            request_id=f"{session}:{fed}",
            model=plan.model,
            tensors=[codec.encode(TOKEN_INPUT, np.array([ids], np.int64))],
            route=self._hops(plan, route),
            session=worker_pb2.SessionStep(
                id=session,
                position=fed,
                length=len(ids),
                step=step,
                sampling=worker_pb2.Sampling(
                    temperature=sampling.temperature,
                    top_k=sampling.top_k,
                    top_p=sampling.top_p,
                    seeded=sampling.seed is not None,
                    seed=sampling.seed or 0,
                ),
            ),
        )

    async def _run(
        self,
        plan: Plan,
        route: tuple[RouteHop, ...],
        request: worker_pb2.StageRequest,
        made: int,
        deadline: float,
    ) -> int:
        """Sends one step along `route`; the token its last stage sampled."""
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise DeadlineExceeded(
                f"model {plan.model!r}: the generation's deadline passed after {made} token(s)"
            )
        first = route[0].workers[0]
        self.fleet.in_flight.update([first])
        try:
            response = await self.transport.run(first, routes.sign_route(request), remaining)
        finally:
            self.fleet.in_flight.subtract([first])
        return int(response.token)

    def _hops(self, plan: Plan, route: tuple[RouteHop, ...]) -> list[worker_pb2.Hop]:
        """The route as workers read it: each hop's state pairs, and only what the next stage reads
        carried (no state output, no position input); the last hop answers the logits."""
        states = {s.output for s in plan.states} | {s.input for s in plan.states}
        by_sha = {s.sha256: s for s in plan.stages}
        hops = []
        for i, hop in enumerate(route):
            last = i == len(route) - 1
            carry = [c for c in hop.carry if c not in states and c not in POSITION_INPUTS]
            stage = by_sha[hop.stage]
            hops.append(
                worker_pb2.Hop(
                    stage=hop.stage,
                    addresses=[self.fleet.address(w) for w in hop.workers[:1]],
                    worker_ids=list(hop.workers[:1]),
                    carry=[LOGITS] if last else carry,
                    states=[
                        worker_pb2.StatePair(output=s.output, input=s.input, axis=s.axis)
                        for s in plan.states_of(stage)
                    ],
                )
            )
        return hops
