"""Deploying a model: check it, split it, send each worker its shards, load them, swap in the plan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import grpc
import onnx

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.deploying.manifests import manifest_of, plan_of
from edgeswarm.coordinator.fleet.members import Link, Members
from edgeswarm.coordinator.planning.measure import SHARD_TIMEOUT_S, Measurer, chunks, drifted
from edgeswarm.coordinator.planning.placement import fit_shape, place, shape_of
from edgeswarm.coordinator.planning.plan_report import report
from edgeswarm.coordinator.planning.planner import OBJECTIVES, Layout, NoFit, PlanResult, neighbours
from edgeswarm.coordinator.planning.planner import plan as plan_layout
from edgeswarm.coordinator.planning.segments import Segments, segments_of
from edgeswarm.coordinator.serving.route_choice import stages_without_workers
from edgeswarm.errors import (
    EdgeswarmError,
    InvalidRequest,
    NotFound,
    PlacementError,
    StageUnavailable,
    from_rpc_error,
)
from edgeswarm.graph.loading import parse_model
from edgeswarm.graph.partition import PartitionError, StagePart, balanced_cuts, split
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.graph.signature import signature_of
from edgeswarm.plans import Plan, Signature, StageSpec

log = logging.getLogger(__name__)

# Longest wait for a replaced plan's requests to finish before its stages are unloaded.
RETIRE_WAIT_S = 60.0
# Plans at most, in a fleet too large to time every link between workers, to time its neighbours' links.
NEIGHBOUR_ROUNDS = 3


@dataclass(frozen=True)
class Request:
    """What a deploy asked for, kept to re-plan the model when the fleet changes."""

    mode: str
    replicas: int
    stages: int
    data: bytes
    objective: str = "throughput"
    # For "auto": the live workers the plan was made for; a change re-plans.
    fleet: frozenset[str] = frozenset()
    batching: tuple[int, float] = (0, 0.0)  # most requests per call, longest wait in seconds
    # For "auto": each worker's calibration (GFLOP/s) when planned; a drift re-plans.
    calibrations: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Split:
    signature: Signature
    parts: tuple[StagePart, ...]
    digests: tuple[str, ...]  # sha256 of each part's bytes


def parse_and_split(name: str, data: bytes, stages: int) -> Split:
    """Checks the ONNX file and cuts it into `stages` parts. CPU-bound: run it in a thread."""
    model = parse_model(name, data)
    signature = signature_of(model)
    try:
        parts = tuple(split(model, balanced_cuts(model, stages) if stages > 1 else []))
    except PartitionError as exc:
        raise InvalidRequest(f"model {name!r} cannot be split into {stages} stages: {exc}") from exc
    return Split(signature, parts, tuple(hashlib.sha256(p.model).hexdigest() for p in parts))


def layout_specs(
    model: onnx.ModelProto, segments: Segments, layout: Layout
) -> tuple[list[StageSpec], dict[str, bytes]]:
    """The stages of a planned layout and their shards by sha256: the one-stage pipelines as one group
    of replicas, each longer pipeline a group of its own, cut where the planner put its stages."""
    specs: list[StageSpec] = []
    shards: dict[str, bytes] = {}

    def add(parts: Sequence[StagePart], workers: Sequence[tuple[str, ...]], group: int) -> None:
        for part, held_by in zip(parts, workers, strict=True):
            sha = hashlib.sha256(part.model).hexdigest()
            shards[sha] = part.model
            specs.append(
                StageSpec(
                    part.index, sha, len(part.model), part.inputs, part.outputs, part.carry, held_by, group
                )
            )

    singles = tuple(p.stages[0].worker for p in layout.pipelines if len(p.stages) == 1)
    groups = 0
    if singles:
        add(split(model, []), [singles], 0)
        groups = 1
    for pipeline in (p for p in layout.pipelines if len(p.stages) > 1):
        add(split(model, segments.cuts_of(pipeline.stages)), [(s.worker,) for s in pipeline.stages], groups)
        groups += 1
    return specs, shards


class Deployer:
    def __init__(self, members: Members) -> None:
        self.members = members
        self.plans: dict[str, Plan] = {}
        self.shards: dict[str, bytes] = {}
        self.requests: dict[str, Request] = {}
        # The planner's report of each model deployed with mode "auto".
        self.reports: dict[str, dict[str, Any]] = {}
        self.measurer = Measurer(
            lambda w: members.link(w).worker, members.descriptions.get, members.address, members.clock
        )
        # Told of each new plan (model, version, why), and of an undeploy (version 0): fleet events.
        self.on_plan: list[Callable[[str, int, str], None]] = []
        self._lock = asyncio.Lock()
        # Requests running on each (model, version); a retired plan's stages are unloaded once it drains.
        self._running: Counter[tuple[str, int]] = Counter()
        self._drained = asyncio.Condition()
        # Until this time (a start plus settings.recovery_window), a request for an unknown model waits
        # for the workers to report the plans they hold.
        self._recovering_until = members.clock() + members.settings.recovery_window
        self._changed = asyncio.Event()
        members.on_change.append(self._announce)
        members.reconcile = self.reconcile

    def plan(self, name: str, version: str = "") -> Plan:
        """The current plan of `name`; `version`, when given, must be the current one."""
        try:
            plan = self.plans[name]
        except KeyError:
            known = ", ".join(sorted(self.plans)) or "none"
            raise NotFound(f"model {name!r} is not deployed (deployed: {known})") from None
        if version not in ("", str(plan.version)):
            raise InvalidRequest(f"model {name!r} is at version {plan.version}, not {version!r}")
        return plan

    @contextlib.asynccontextmanager
    async def serving(self, name: str, version: str = "") -> AsyncIterator[Plan]:
        """The current plan of `name`, kept loaded until the block ends even if a new plan replaces it."""
        await self._await_recovery(name)
        plan = self.plan(name, version)
        key = (plan.model, plan.version)
        self._running[key] += 1
        try:
            yield plan
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
                async with self._drained:
                    self._drained.notify_all()

    async def _await_recovery(self, name: str) -> None:
        """Just after a start, holds a request until its model's plan is known and every stage of some
        route has a live worker, or the recovery window closes."""
        while (wait := self._recovering_until - self.members.clock()) > 0:
            changed = self._changed  # taken before the check, so no change between is missed
            plan = self.plans.get(name)
            if plan is not None and not stages_without_workers(plan, self.members.live()):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    def _announce(self, *_: object) -> None:
        """Wakes the requests waiting in `_await_recovery` (plans or workers changed)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def deploy(
        self,
        name: str,
        mode: str,
        replicas: int,
        stages: int,
        data: bytes,
        fit: bool = False,
        why: str = "deploy",
        objective: str = "throughput",
        batching: tuple[int, float] = (0, 0.0),
    ) -> Plan:
        """Places `name` as asked: by the planner ("auto"), or as replicas or a pipeline of the asked
        shape; with `fit`, on as many live workers as there are, up to what was asked."""
        if not name:
            raise InvalidRequest("a model needs a name")
        async with self._lock:
            live = sorted(self.members.live())
            old = self.plans.get(name)
            version = (old.version + 1) if old else 1
            if mode == "auto":
                model = await asyncio.to_thread(parse_model, name, data)
                result, segments, _ = await self._measure_and_plan(name, model, objective, live)
                specs, shards = await asyncio.to_thread(layout_specs, model, segments, result.chosen)
                chosen = result.chosen
                plan = Plan(
                    name, version, mode, signature_of(model), tuple(specs),
                    objective, chosen.throughput, chosen.latency,
                )  # fmt: skip
            else:
                stage_count, per_stage = (fit_shape if fit else shape_of)(mode, replicas, stages, len(live))
                load = Counter(w for plan in self.plans.values() for w in plan.workers)
                placed = place(name, stage_count, per_stage, live, load)
                cut = await asyncio.to_thread(parse_and_split, name, data, stage_count)
                specs = [
                    StageSpec(p.index, sha, len(p.model), p.inputs, p.outputs, p.carry, workers)
                    for p, sha, workers in zip(cut.parts, cut.digests, placed, strict=True)
                ]
                shards = dict(zip(cut.digests, (p.model for p in cut.parts), strict=True))
                plan = Plan(name, version, mode, cut.signature, tuple(specs))
            if batching[0] < 0 or batching[1] < 0:
                raise InvalidRequest(f"batching needs batch_max >= 0 and a delay >= 0, not {batching}")
            plan = replace(plan, batch_max=batching[0], batch_delay_s=batching[1])
            self.shards.update(shards)
            try:
                async with asyncio.TaskGroup() as tasks:
                    for spec in specs:
                        for worker in spec.workers:
                            link = self.members.link(worker)
                            tasks.create_task(self._install(worker, link, [spec.sha256], plan=plan))
            except* Exception as group:
                # Nothing of a failed deploy stays loaded; the caller hears the first cause.
                await self._retire(replace(plan, version=0))
                raise _first(group) from None
            self.plans[name] = plan
            self.requests[name] = Request(
                mode, replicas, stages, data, objective, frozenset(live), batching, self._calibrations(live)
            )
            self._announce()
            log.info(
                "model_deployed model=%s version=%d mode=%s stages=%s",
                name,
                plan.version,
                mode,
                [[w[:8] for w in s.workers] for s in specs],
            )
            self._tell(name, plan.version, why)
            if old is not None:
                await self._retire(old)
            return plan

    async def _measure_and_plan(
        self, name: str, model: onnx.ModelProto, objective: str, live: Sequence[str]
    ) -> tuple[PlanResult, Segments, dict[str, Any]]:
        """Times the model's segments on the live workers, plans, and reports the plan."""
        if objective not in OBJECTIVES:
            raise InvalidRequest(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
        if not live:
            raise PlacementError(f"model {name!r}: no live worker to plan for")
        inputs = sample_inputs(model, batch=1)
        try:
            segments = await asyncio.to_thread(segments_of, model, inputs)
        except PartitionError as exc:
            raise InvalidRequest(f"model {name!r} cannot be cut into segments: {exc}") from exc
        pair_workers = self.members.settings.pair_workers
        figures = await self.measurer.figures(segments, inputs, live, pair_workers)
        try:
            result = await asyncio.to_thread(plan_layout, segments.profile, figures, objective)
            # In a larger fleet, time the links between the workers the plan makes neighbours, and plan
            # again with them, until a plan's neighbours are all timed.
            for _ in range(NEIGHBOUR_ROUNDS if len(live) > pair_workers else 0):
                timed = {(f.id, p.peer) for f in figures for p in f.peers}
                untimed = [pair for pair in neighbours(result.chosen) if pair not in timed]
                if not untimed:
                    break
                log.info("planning_again model=%s timing_neighbour_links=%d", name, len(untimed))
                figures = await self.measurer.with_pairs(figures, untimed)
                result = await asyncio.to_thread(plan_layout, segments.profile, figures, objective)
        except NoFit as exc:
            raise PlacementError(f"model {name!r}: {exc}") from exc
        names = {w.info.id: w.info.name for w in self.members.view.workers}
        document = report(result, segments, names, figures)
        self.reports[name] = document
        log.info(
            "model_planned model=%s objective=%s layout=%s predicted_rps=%.1f predicted_latency_ms=%.2f",
            name, objective, result.chosen.kind, result.chosen.throughput, 1000 * result.chosen.latency,
        )  # fmt: skip
        return result, segments, document

    async def plan_only(self, name: str, data: bytes, objective: str) -> dict[str, Any]:
        """What an "auto" deploy of `data` would place, without placing anything."""
        model = await asyncio.to_thread(parse_model, name, data)
        return (await self._measure_and_plan(name, model, objective, sorted(self.members.live())))[2]

    def _tell(self, name: str, version: int, why: str) -> None:
        for listener in self.on_plan:
            listener(name, version, why)

    async def heal(self, interval: float, grace: float) -> None:
        """Every `interval` seconds, re-plans each model that has a worker down for `grace` seconds or
        more, or whose asked-for shape the live fleet can now come closer to. Returns when cancelled."""
        while True:
            await asyncio.sleep(interval)
            for name in list(self.plans):
                try:
                    await self._heal(name, grace)
                except EdgeswarmError as exc:
                    log.warning("replan_failed model=%s error=%r", name, exc.message)

    def _calibrations(self, workers: Iterable[str]) -> tuple[tuple[str, float], ...]:
        known = self.members.descriptions
        return tuple(sorted((w, known[w].calibration_gflops) for w in workers if w in known))

    async def _heal(self, name: str, grace: float) -> None:
        plan, request = self.plans.get(name), self.requests.get(name)
        live = self.members.live()
        if plan is None or request is None or not live:
            return
        now = self.members.clock()
        gone = sorted(
            w for w in plan.workers if w not in live and now - self.members.down_since.get(w, now) >= grace
        )
        if request.mode == "auto":
            # A change of the fleet counts once it has settled: a worker down within its grace is
            # still counted, one that joined counts at once.
            settled = live | {w for w in request.fleet if w not in live and w not in gone}
            grows = settled != request.fleet and not gone
            moved = drifted(dict(request.calibrations), dict(self._calibrations(live)))
        else:
            count, per_stage = fit_shape(request.mode, request.replicas, request.stages, len(live))
            # Grow back only with every worker of the plan up: one that is down may yet return.
            grows = count * per_stage > len(plan.workers) and plan.workers <= live
            moved = {}
        if gone:
            why = f"workers gone: {', '.join(w[:8] for w in gone)}"
        elif grows:
            why = f"{len(live)} workers live"
        elif moved:
            why = "figures changed: " + ", ".join(
                f"{w[:8]} {a:.1f} -> {b:.1f} GFLOP/s" for w, (a, b) in moved.items()
            )
        else:
            return
        log.info("replanning model=%s version=%d reason=%r", name, plan.version, why)
        asked = (request.mode, request.replicas, request.stages, request.data)
        await self.deploy(
            name, *asked, fit=True, why=why, objective=request.objective, batching=request.batching
        )

    async def undeploy(self, name: str) -> None:
        async with self._lock:
            plan = self.plan(name)
            del self.plans[name]
            self.requests.pop(name, None)
            self._tell(name, 0, "undeploy")
            await self._retire(plan)
            log.info("model_undeployed model=%s version=%d", name, plan.version)

    async def _retire(self, plan: Plan) -> None:
        """Unloads stages of `plan` that no current plan uses, once its requests finished (or RETIRE_WAIT_S).

        A worker that cannot be reached is skipped.
        """
        key = (plan.model, plan.version)
        async with self._drained:
            try:
                await asyncio.wait_for(
                    self._drained.wait_for(lambda: key not in self._running), RETIRE_WAIT_S
                )
            except TimeoutError:
                log.warning("retire_timeout model=%s version=%d running=%d", *key, self._running[key])
        in_use = {s.sha256 for p in self.plans.values() for s in p.stages}
        for stage in plan.stages:
            if stage.sha256 in in_use:
                continue
            self.shards.pop(stage.sha256, None)
            for worker in stage.workers:
                try:
                    await self.members.link(worker).worker.UnloadStage(
                        worker_pb2.UnloadStageRequest(sha256=stage.sha256), timeout=5
                    )
                except grpc.RpcError as exc:
                    log.warning("unload_failed worker=%s error=%s", worker[:8], exc.code().name)

    async def reconcile(self, worker_id: str, link: Link, description: worker_pb2.WorkerDescription) -> None:
        """Loads on a worker that (re)joined every stage the current plans give it.

        A plan the worker reports that is newer than this coordinator's (it restarted) is taken over first.
        """
        for manifest in description.plans:
            known = self.plans.get(manifest.model)
            if known is None or known.version < manifest.version:
                self.plans[manifest.model] = plan_of(manifest)
                log.info(
                    "model_recovered model=%s version=%d from=%s",
                    manifest.model,
                    manifest.version,
                    worker_id[:8],
                )
                self._tell(manifest.model, manifest.version, f"recovered from worker {worker_id[:8]}")
                self._announce()
        wanted = [
            s.sha256
            for plan in self.plans.values()
            for s in plan.stages
            if worker_id in s.workers and s.sha256 not in description.loaded_stages
        ]
        if wanted:
            log.info("worker_restoring id=%s stages=%d", worker_id[:8], len(wanted))
            await self._install(worker_id, link, wanted, set(description.cached_shards))

    def _plan_holding(self, sha256: str) -> Plan | None:
        return next((p for p in self.plans.values() if sha256 in {s.sha256 for s in p.stages}), None)

    async def _install(
        self,
        worker_id: str,
        link: Link,
        digests: Sequence[str],
        cached: set[str] | None = None,
        plan: Plan | None = None,
    ) -> None:
        try:
            if cached is None:
                cached = set(
                    (await link.worker.Describe(worker_pb2.DescribeRequest(), timeout=10)).cached_shards
                )
            for sha in digests:
                if sha not in cached:
                    if sha not in self.shards:
                        raise StageUnavailable(
                            f"worker {worker_id[:8]} lost shard {sha[:12]}, which this coordinator never had "
                            "(it took the plan over after a restart): deploy the model again"
                        )
                    await link.worker.PutShard(chunks(sha, self.shards[sha]), timeout=SHARD_TIMEOUT_S)
                owner = plan or self._plan_holding(sha)
                request = worker_pb2.LoadStageRequest(sha256=sha, plan=manifest_of(owner) if owner else None)
                await link.worker.LoadStage(request, timeout=SHARD_TIMEOUT_S)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            error.message = f"worker {worker_id[:8]} at {link.address}: {error.message}"
            raise error from exc


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
