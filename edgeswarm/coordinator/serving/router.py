"""Routing a request over the current plan, retrying other routes until one finishes or time runs out."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from edgeswarm import deadlines
from edgeswarm._proto.edgeswarm.v1 import tensor_pb2, worker_pb2
from edgeswarm.coordinator.serving.latency import PeakEwma
from edgeswarm.coordinator.serving.route_choice import RouteHop, choose_route
from edgeswarm.coordinator.worker_client import WorkerClient
from edgeswarm.errors import DeadlineExceeded, StageUnavailable
from edgeswarm.metrics import ROUTE_FAILURES, ROUTED
from edgeswarm.plans import Plan
from edgeswarm.security import routes

log = logging.getLogger(__name__)


class Transport(Protocol):
    """The one seam between the router and the workers."""

    async def run(
        self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse: ...


class FleetState(Protocol):
    in_flight: Counter[str]

    def live(self) -> frozenset[str]: ...
    def banned(self, worker_id: str) -> bool: ...
    def ban(self, worker_id: str) -> float: ...
    def address(self, worker_id: str) -> str: ...
    def forgive(self, worker_id: str) -> None: ...


class Router:
    # Each failed attempt bans a worker, so routes run out long before this; it bounds a fleet that flaps.
    MAX_ATTEMPTS = 16

    def __init__(
        self,
        fleet: FleetState,
        transport: Transport,
        clock: Callable[[], float] = time.monotonic,
        latency_decay: float = 2.0,
        attempt_factor: float = 10.0,
        attempt_floor: float = 2.0,
    ) -> None:
        self.fleet = fleet
        self.transport = transport
        self.clock = clock
        # Seconds per request of each worker, by model, from the routes that finished.
        self.latency = PeakEwma(latency_decay)
        self.budgets = AttemptBudget(attempt_factor, attempt_floor)
        self._turns = itertools.count()
        self._attempts: dict[asyncio.Future[worker_pb2.StageResponse], tuple[str, ...]] = {}
        self._abandoned: dict[asyncio.Future[worker_pb2.StageResponse], str] = {}

    async def infer(
        self,
        plan: Plan,
        tensors: Sequence[tensor_pb2.Tensor],
        outputs: Sequence[str],
        request_id: str,
        timeout: float,
    ) -> list[tensor_pb2.Tensor]:
        deadline = self.clock() + timeout
        attempts = stalled = 0
        last: StageUnavailable | None = None
        while True:
            now = self.clock()
            remaining = deadline - now
            if remaining <= 0:
                cause = f"; last failure: {last.message}" if last else ""
                raise DeadlineExceeded(
                    f"model {plan.model!r}: deadline of {timeout:.3g}s passed "
                    f"after {attempts} attempt(s){cause}"
                )
            route = choose_route(
                plan,
                self.fleet.live(),
                self.fleet.banned,
                self.fleet.in_flight,
                next(self._turns),
                lambda worker: self.latency.estimate(plan.model, worker, now),  # noqa: B023
            )
            request = routes.sign_route(
                worker_pb2.StageRequest(
                    request_id=request_id,
                    model=plan.model,
                    tensors=tensors,
                    route=self._hops(route, outputs, plan),
                )
            )
            primaries = [hop.workers[0] for hop in route]
            ROUTED.labels(plan.model, primaries[0]).inc()
            self.fleet.in_flight.update(primaries)
            budget = self.budgets.of(plan.model, stalled, remaining)
            try:
                response = await self._attempt(primaries, request, budget)
            except (StageUnavailable, DeadlineExceeded) as exc:
                late = now + budget - self.clock() <= 2 * deadlines.margin(budget)
                if late and budget >= remaining:
                    # It failed as the request's own time ran out: the deadline's doing, not a worker's.
                    if isinstance(exc, DeadlineExceeded):
                        raise
                    raise DeadlineExceeded(
                        f"model {plan.model!r}: deadline of {timeout:.3g}s passed "
                        f"after {attempts + 1} attempt(s); last failure: {exc.message}"
                    ) from exc
                if late:
                    stalled += 1  # a stuck hop: the next attempt may take longer before it counts as stuck
                failure = exc if isinstance(exc, StageUnavailable) else self._stuck(primaries[0], budget)
                attempts += 1
                last = failure
                ROUTE_FAILURES.labels(plan.model).inc()
                if attempts >= self.MAX_ATTEMPTS:
                    raise failure from exc
                for worker in failure.failed or (primaries[0],):
                    length = self.fleet.ban(worker)
                    log.warning(
                        "route_failed request=%s model=%s worker=%s ban_s=%.2f error=%r",
                        request_id,
                        plan.model,
                        worker[:8],
                        length,
                        failure.message,
                    )
                continue
            finally:
                self.fleet.in_flight.subtract(primaries)
            finished = self.clock()
            self.budgets.observe(plan.model, finished - now)
            for worker in primaries:
                self.fleet.forgive(worker)
                self.latency.observe(plan.model, worker, finished - now, finished)
            return list(response.tensors)

    @staticmethod
    def _stuck(worker: str, budget: float) -> StageUnavailable:
        """The first hop did not answer within the attempt's budget: far slower than the model has ever
        been, so it counts as failed (banned, the request tried elsewhere)."""
        return StageUnavailable(f"worker {worker[:8]} did not answer within {budget:.3g}s", (worker,))

    async def _attempt(
        self, primaries: Sequence[str], request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse:
        """One try along a route; abandoned (StageUnavailable) as soon as a worker on it is lost."""
        attempt = asyncio.ensure_future(self.transport.run(primaries[0], request, timeout))
        self._attempts[attempt] = tuple(primaries)
        try:
            return await attempt
        except asyncio.CancelledError:
            lost = self._abandoned.pop(attempt, None)
            if lost is None:
                raise
            raise StageUnavailable(f"worker {lost[:8]} was lost while it held the request", (lost,)) from None
        finally:
            del self._attempts[attempt]
            self._abandoned.pop(attempt, None)

    def abandon(self, worker_id: str) -> None:
        """`worker_id` is lost (killed, frozen, cut off): give up the attempts routed through it now
        instead of at their deadline, so they are retried on another route. What was known of its
        speed is dropped: if it comes back, it starts afresh."""
        self.latency.forget(worker_id)
        for attempt, workers in self._attempts.items():
            if worker_id in workers and not attempt.done():
                self._abandoned[attempt] = worker_id
                attempt.cancel()

    def _hops(self, route: tuple[RouteHop, ...], outputs: Sequence[str], plan: Plan) -> list[worker_pb2.Hop]:
        hops = []
        for i, hop in enumerate(route):
            carry = list(outputs) if i == len(route) - 1 else list(hop.carry)
            hops.append(
                worker_pb2.Hop(
                    stage=hop.stage,
                    addresses=[self.fleet.address(w) for w in hop.workers],
                    worker_ids=list(hop.workers),
                    carry=carry,
                    batch_max=plan.batch_max if i == 0 else 0,
                    batch_delay_ms=1000 * plan.batch_delay_s if i == 0 else 0.0,
                )
            )
        return hops


class AttemptBudget:
    """How long one attempt may take before it counts as stuck: `factor` times the longest any route of
    the model has taken, at least `floor` seconds, doubled for each attempt of the request that stalled
    already (a request that is slow everywhere gets its whole time in the end). Nothing known of the
    model yet: the request's whole remaining time."""

    def __init__(self, factor: float, floor: float) -> None:
        self.factor = factor
        self.floor = floor
        self._longest: dict[str, float] = {}

    def observe(self, model: str, seconds: float) -> None:
        self._longest[model] = max(seconds, self._longest.get(model, 0.0))

    def of(self, model: str, stalled: int, remaining: float) -> float:
        longest = self._longest.get(model)
        if longest is None or self.factor <= 0:
            return remaining
        return min(remaining, max(self.floor, self.factor * longest) * 2.0**stalled)


class GrpcTransport:
    """The real transport: RunStage through the worker's client, which translates its errors."""

    def __init__(self, client_of: Callable[[str], WorkerClient]) -> None:
        self._client_of = client_of

    async def run(
        self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse:
        return await self._client_of(worker_id).run_stage(request, timeout)
