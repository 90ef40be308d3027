"""Placing a model on measured workers: replicas, one pipeline, or several side by side. Pure, no I/O.

The model is a chain of S segments (cut at its natural positions). A worker running segments
[a, b) after worker p spends `link(p, w, bytes in) + Σ seconds[w][a:b]` per request, plus its call
overhead (twice on a stage before the last, which also relays the next stage's answer) and on the
last stage the link back to the coordinator; links cost half of each end's round trip plus the
bytes over the slower end's bandwidth, or, between two workers whose link was measured, half its
round trip plus the bytes over its bandwidth. A pipeline's throughput is 1 / its slowest stage, its latency
the sum of its stages; pipelines side by side add their throughputs. A worker holds the parameter
bytes of its segments, which must not exceed its memory.

`best_pipeline` is exact for the ordered chain partition and searches worker order exhaustively
(dynamic programming over subsets) for up to EXACT_WORKERS workers and EXACT_SEGMENTS segments;
beyond, it orders workers fastest first and bisects the bottleneck with a greedy fill (exact for
that order), reporting a lower bound. `plan` compares replicas, one pipeline and hybrids and keeps
the best for the objective. Same inputs, same plan.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edgeswarm.plans import Objective

EXACT_WORKERS = 8
EXACT_SEGMENTS = 16


@dataclass(frozen=True)
class PeerLink:
    """A measured link between a worker and `peer`, in place of the estimate from both ends' figures."""

    peer: str
    rtt: float  # seconds
    bandwidth: float  # bytes per second


@dataclass(frozen=True)
class WorkerFigures:
    id: str
    memory: int  # bytes of weights it may hold
    seconds: tuple[float, ...]  # compute time of each segment on this worker
    bandwidth: float = math.inf  # bytes per second of its link
    rtt: float = 0.0  # seconds, to the coordinator
    # Seconds a stage costs here per request beyond compute and bytes: the call's handling (measured
    # as a round trip through a trivial stage, so it includes the round trip itself).
    overhead: float = 0.0
    # Links to other workers that were measured (either end may list one; the pair is the same).
    peers: tuple[PeerLink, ...] = ()


@dataclass(frozen=True)
class ModelProfile:
    segment_bytes: tuple[int, ...]  # parameter bytes of each segment
    boundary_bytes: tuple[int, ...]  # bytes crossing after segment i, i < S - 1
    input_bytes: int = 0
    output_bytes: int = 0

    @property
    def segments(self) -> int:
        return len(self.segment_bytes)


@dataclass(frozen=True)
class Stage:
    worker: str
    first: int  # first segment
    last: int  # last segment (inclusive)
    seconds: float  # expected time per request: link in, compute, and on the last stage the link out


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]

    @property
    def bottleneck(self) -> float:
        return max(s.seconds for s in self.stages)

    @property
    def latency(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def throughput(self) -> float:
        return 1.0 / self.bottleneck if self.bottleneck > 0 else math.inf


@dataclass(frozen=True)
class Layout:
    """Pipelines side by side (a replica is a one-stage pipeline)."""

    kind: str  # "replicas", "pipeline" or "hybrid"
    pipelines: tuple[Pipeline, ...]

    @property
    def throughput(self) -> float:
        return sum(p.throughput for p in self.pipelines)

    @property
    def latency(self) -> float:
        """The slowest route's: a request may take any of the pipelines."""
        return max(p.latency for p in self.pipelines)

    @property
    def workers(self) -> int:
        return sum(len(p.stages) for p in self.pipelines)


@dataclass(frozen=True)
class PlanResult:
    objective: Objective
    chosen: Layout
    alternatives: tuple[Layout, ...]  # every layout considered, best first
    exact: bool  # whether the pipeline search was exhaustive
    bound: float  # an upper bound on any layout's throughput (requests/s)
    notes: tuple[str, ...] = field(default=())


def neighbours(layout: Layout) -> list[tuple[str, str]]:
    """Each pair of workers that a pipeline of `layout` runs one after the other, in order."""
    return [(a.worker, b.worker) for p in layout.pipelines for a, b in itertools.pairwise(p.stages)]


class NoFit(ValueError):
    """No layout of the fleet holds the model within the workers' memory."""


class _Costs:
    """Prefix sums, so that any stage's time and memory are O(1)."""

    def __init__(self, model: ModelProfile, workers: Sequence[WorkerFigures]) -> None:
        self.model = model
        self.workers = list(workers)
        self.time = [list(itertools.accumulate(w.seconds, initial=0.0)) for w in workers]
        self.memory = list(itertools.accumulate(model.segment_bytes, initial=0))
        index = {w.id: i for i, w in enumerate(workers)}
        self.pairs: dict[tuple[int, int], PeerLink] = {}
        for i, w in enumerate(workers):
            for link in w.peers:
                j = index.get(link.peer)
                if j is not None and j != i:
                    self.pairs[(i, j)] = self.pairs[(j, i)] = link

    def fits(self, w: int, a: int, b: int) -> bool:
        return self.memory[b] - self.memory[a] <= self.workers[w].memory

    def furthest(self, p: int | None, w: int, a: int, limit: float) -> int:
        """The largest b such that worker w, after p, runs segments [a, b) within `limit` seconds and
        its memory; a when it cannot take even one."""
        size = self.model.input_bytes if a == 0 else self.model.boundary_bytes[a - 1]
        budget = limit - self.link(p, w, size) - 2 * self.workers[w].overhead
        by_time = bisect.bisect_right(self.time[w], self.time[w][a] + budget) - 1
        by_memory = bisect.bisect_right(self.memory, self.memory[a] + self.workers[w].memory) - 1
        b = min(by_time, by_memory, self.model.segments)
        if b < self.model.segments and self.stage(p, w, a, self.model.segments) <= limit:
            b = self.model.segments  # the last stage relays nothing, so it may take more
        if b == self.model.segments and self.stage(p, w, a, b) > limit:
            b -= 1  # the last stage also sends the outputs back
        return max(b, a)

    def link(self, p: int | None, w: int | None, size: int) -> float:
        """Seconds to move `size` bytes from p to w; None is the coordinator."""
        pair = self.pairs.get((p, w)) if p is not None and w is not None else None
        if pair is not None:
            # size / inf is 0.0; a pair with no bandwidth (one could not reach the other) is never taken.
            return pair.rtt / 2 + (size / pair.bandwidth if pair.bandwidth > 0 else math.inf)
        ends = [self.workers[i] for i in (p, w) if i is not None]
        rtt = sum(e.rtt for e in ends) / 2
        bandwidth = min((e.bandwidth for e in ends), default=math.inf)
        return rtt + (size / bandwidth if bandwidth < math.inf else 0.0)

    def stage(self, p: int | None, w: int, a: int, b: int) -> float:
        size = self.model.input_bytes if a == 0 else self.model.boundary_bytes[a - 1]
        seconds = self.link(p, w, size) + self.time[w][b] - self.time[w][a]
        if b == self.model.segments:
            return seconds + self.workers[w].overhead + self.link(w, None, self.model.output_bytes)
        # A stage before the last also calls the next one and relays its answer: about one call more.
        return seconds + 2 * self.workers[w].overhead


def _pipeline(costs: _Costs, chain: Sequence[tuple[int, int, int]]) -> Pipeline:
    stages, previous = [], None
    for w, a, b in chain:
        stages.append(Stage(costs.workers[w].id, a, b - 1, costs.stage(previous, w, a, b)))
        previous = w
    return Pipeline(tuple(stages))


def best_pipeline(
    model: ModelProfile, workers: Sequence[WorkerFigures], objective: Objective | str = Objective.THROUGHPUT
) -> tuple[Pipeline | None, bool]:
    """The pipeline over any subset and order of `workers` with the least bottleneck ("throughput"),
    the least latency ("latency"), or the fewest stages then least bottleneck ("fit"); None if none
    fits. The flag says whether the search was exhaustive."""
    costs = _Costs(model, workers)
    if len(workers) <= EXACT_WORKERS and model.segments <= EXACT_SEGMENTS:
        return _exact(costs, Objective(objective)), True
    return _greedy(costs, Objective(objective)), False


def _combine(objective: Objective, so_far: float, stage: float) -> float:
    return so_far + stage if objective == "latency" else max(so_far, stage)


def _exact(costs: _Costs, objective: Objective) -> Pipeline | None:
    """Dynamic programming over (workers used, last worker, segments covered)."""
    n, s = len(costs.workers), costs.model.segments
    # best[(mask, last, b)] = (value, chain) for chains covering segments [0, b).
    best: dict[tuple[int, int, int], tuple[float, tuple[tuple[int, int, int], ...]]] = {}
    for w in range(n):
        for b in range(1, s + 1):
            if costs.fits(w, 0, b) and math.isfinite(first := costs.stage(None, w, 0, b)):
                best[(1 << w, w, b)] = (first, ((w, 0, b),))
    finals: list[tuple[tuple[int, float, tuple[int, ...]], tuple[tuple[int, int, int], ...]]] = []
    for mask in range(1, 1 << n):  # masks grow, so every state is final before it is extended
        for last in range(n):
            for a in range(1, s + 1):
                state = best.get((mask, last, a))
                if state is None:
                    continue
                value, chain = state
                if a == s:
                    order = tuple(w for w, _, _ in chain)
                    stages = bin(mask).count("1") if objective == "fit" else 0
                    finals.append(((stages, value, order), chain))
                    continue
                for w in range(n):
                    if mask >> w & 1:
                        continue
                    for b in range(a + 1, s + 1):
                        if not costs.fits(w, a, b):
                            break
                        key = (mask | 1 << w, w, b)
                        candidate = _combine(objective, value, costs.stage(last, w, a, b))
                        if not math.isfinite(candidate):
                            continue  # a link one end could not reach
                        if key not in best or candidate < best[key][0]:
                            best[key] = (candidate, (*chain, (w, a, b)))
    if not finals:
        return None
    return _pipeline(costs, min(finals)[1])


def _greedy(costs: _Costs, objective: Objective) -> Pipeline | None:
    """Workers fastest first; the least bottleneck for that order by bisection, each candidate
    checked by filling every worker with as many segments as keep it under the bottleneck."""
    order = sorted(range(len(costs.workers)), key=lambda w: (costs.time[w][-1], costs.workers[w].id))
    s = costs.model.segments

    def fill(limit: float) -> list[tuple[int, int, int]] | None:
        chain: list[tuple[int, int, int]] = []
        a, previous = 0, None
        for w in order:
            if a == s:
                break
            b = costs.furthest(previous, w, a, limit)
            if b > a:
                chain.append((w, a, b))
                a, previous = b, w
        return chain if a == s else None

    high = max(max(costs.stage(None, w, 0, s) for w in order), 1e-9) * 2 + 1.0
    if fill(high * 1e6) is None:
        return None
    low = 0.0
    while high - low > 1e-7 * high:
        middle = (low + high) / 2
        if fill(middle) is None:
            low = middle
        else:
            high = middle
    chain = fill(high)
    return _pipeline(costs, chain) if chain else None


def _replicas(costs: _Costs, workers: Sequence[int]) -> list[Pipeline]:
    s = costs.model.segments
    return [_pipeline(costs, [(w, 0, s)]) for w in workers if costs.fits(w, 0, s)]


def plan(
    model: ModelProfile, workers: Sequence[WorkerFigures], objective: Objective | str = Objective.THROUGHPUT
) -> PlanResult:
    """The best layout of `model` on `workers` for `objective`, and every alternative considered."""
    objective = Objective(objective)  # ValueError for an unknown one
    workers = sorted(workers, key=lambda w: w.id)
    costs = _Costs(model, workers)
    everyone = range(len(workers))
    fitting = sorted(
        (w for w in everyone if costs.fits(w, 0, model.segments)),
        key=lambda w: (costs.stage(None, w, 0, model.segments), workers[w].id),
    )
    layouts: list[Layout] = []
    exact = True

    def pipeline_of(members: Sequence[int], goal: str) -> Pipeline | None:
        nonlocal exact
        found, was_exact = best_pipeline(model, [workers[w] for w in members], goal)
        exact = exact and was_exact
        return found

    replicas = _replicas(costs, fitting)
    if replicas:
        layouts.append(Layout("replicas", tuple(replicas)))
        layouts.append(Layout("replicas", (replicas[0],)))
    single = pipeline_of(everyone, "latency" if objective == "latency" else objective)
    if single is not None and len(single.stages) > 1:
        layouts.append(Layout("pipeline", (single,)))
    if objective == "throughput":
        layouts.extend(_hybrids(costs, fitting, replicas, pipeline_of))
    if not layouts:
        raise NoFit(
            f"no layout holds the model ({sum(model.segment_bytes)} parameter bytes) within the memory of "
            f"{len(workers)} worker(s) (largest {max((w.memory for w in workers), default=0)} bytes)"
        )
    ranked = sorted(set(layouts), key=lambda layout: _rank(objective, layout))
    bound = sum(1.0 / costs.time[w][-1] for w in everyone if costs.time[w][-1] > 0)
    return PlanResult(objective, ranked[0], tuple(ranked), exact, bound)


def _hybrids(
    costs: _Costs,
    fitting: list[int],
    replicas: list[Pipeline],
    pipeline_of: Callable[[Sequence[int], str], Pipeline | None],
) -> list[Layout]:
    """Some fitting workers as replicas beside pipelines of the others; or the fleet as g pipelines,
    workers dealt round-robin fastest first."""
    layouts = []
    others = [w for w in range(len(costs.workers)) if w not in fitting]
    for k in range(len(fitting)):
        rest = sorted([*fitting[k:], *others])
        found = pipeline_of(rest, "throughput") if rest else None
        if found is not None and k and len(found.stages) > 1:
            layouts.append(Layout("hybrid", (*replicas[:k], found)))
    by_speed = sorted(range(len(costs.workers)), key=lambda w: (costs.time[w][-1], costs.workers[w].id))
    for groups in range(2, min(4, len(by_speed) // 2) + 1):
        pipelines = [pipeline_of(sorted(by_speed[g::groups]), "throughput") for g in range(groups)]
        if all(p is not None for p in pipelines):
            layouts.append(Layout("hybrid", tuple(p for p in pipelines if p is not None)))
    return layouts


def _rank(objective: Objective, layout: Layout) -> tuple[object, ...]:
    """Sort key, best first; ties go to fewer workers, then to worker ids, so the choice is stable."""
    ids = tuple(s.worker for p in layout.pipelines for s in p.stages)
    throughput, latency = -round(layout.throughput, 9), round(layout.latency, 12)
    if objective == "latency":
        return (latency, throughput, layout.workers, ids)
    if objective == "fit":
        longest = max(len(p.stages) for p in layout.pipelines)
        return (len(layout.pipelines) > 1, longest, throughput, layout.workers, ids)
    return (throughput, latency, layout.workers, ids)
