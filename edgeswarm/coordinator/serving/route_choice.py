"""Choosing a route through a plan: one live, unbanned worker per stage, least loaded first, where a
worker at least twice as slow as the fastest of its stage counts its load that many times. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgeswarm.coordinator.serving.latency import slowness
from edgeswarm.errors import StageUnavailable
from edgeswarm.plans import Plan, StageSpec


@dataclass(frozen=True)
class RouteHop:
    stage: str
    carry: tuple[str, ...]
    # Candidate workers, preferred first; the rest are fail-over replicas of the same stage.
    workers: tuple[str, ...]


def choose_route(
    plan: Plan,
    live: frozenset[str],
    banned: Callable[[str], bool],
    in_flight: Mapping[str, int],
    turn: int = 0,
    latency: Callable[[str], float] = lambda worker: 0.0,
) -> tuple[RouteHop, ...]:
    """A route for one request, or StageUnavailable naming the first stage with no usable worker.

    A worker's load is its requests in flight plus this one, times its `slowness` among the stage's
    usable workers (`latency`: its recent seconds per request, 0.0 when unknown). Of the plan's
    groups with a usable route, the one whose first hop is least loaded is taken; `turn` rotates
    ties between equally loaded workers and groups, so idle ones take turns.
    """
    routes, failures = [], []
    groups = plan.groups()
    for g, stages in enumerate(groups):
        try:
            load, route = _route(plan, stages, live, banned, in_flight, turn, latency)
        except StageUnavailable as exc:
            failures.append(exc.message)
            continue
        routes.append(((load, (g - turn) % len(groups)), route))
    if not routes:
        raise StageUnavailable("; ".join(failures))
    return min(routes, key=lambda item: item[0])[1]


def _route(
    plan: Plan,
    stages: tuple[StageSpec, ...],
    live: frozenset[str],
    banned: Callable[[str], bool],
    in_flight: Mapping[str, int],
    turn: int,
    latency: Callable[[str], float],
) -> tuple[int, tuple[RouteHop, ...]]:
    """The route through `stages` and the load of its first worker."""
    hops: list[RouteHop] = []
    first_load = 0
    for stage in stages:
        usable = [w for w in stage.workers if w in live and not banned(w)]
        if not usable:
            raise StageUnavailable(_nobody(plan, stage, len(stages), live, banned))
        weight = slowness({w: latency(w) for w in usable})
        load = {w: weight[w] * (in_flight.get(w, 0) + 1) for w in usable}
        count = len(usable)
        order = sorted(range(count), key=lambda i: (load[usable[i]], (i - turn) % count))
        if not hops:
            first_load = load[usable[order[0]]]
        hops.append(RouteHop(stage.sha256, stage.carry, tuple(usable[i] for i in order)))
    return first_load, tuple(hops)


def stages_without_workers(plan: Plan, live: frozenset[str]) -> list[int]:
    """Indexes of the stages that no live worker holds in the group closest to serving; empty while
    some group can serve."""
    missing = [[s.index for s in group if not live.intersection(s.workers)] for group in plan.groups()]
    return min(missing, key=len, default=[])


def _nobody(
    plan: Plan, stage: StageSpec, count: int, live: frozenset[str], banned: Callable[[str], bool]
) -> str:
    states = ", ".join(
        f"{w[:8]} {'banned' if banned(w) else 'up' if w in live else 'down'}" for w in stage.workers
    )
    where = f" of route {stage.group + 1}" if len(plan.groups()) > 1 else ""
    return f"model {plan.model!r}: stage {stage.index + 1} of {count}{where} has no live worker ({states})"
