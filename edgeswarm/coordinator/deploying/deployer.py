"""Deploying a model: check it, split it, send each worker its shards, load them, swap in the plan."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import onnx

from edgeswarm.coordinator.deploying.installer import Installer
from edgeswarm.coordinator.deploying.layouts import (
    decoder_states,
    layout_specs,
    parse_and_split,
    position_inputs,
)
from edgeswarm.coordinator.deploying.registry import DeployRequest, Registry
from edgeswarm.coordinator.fleet.members import Members
from edgeswarm.coordinator.modelstore import StoredModel
from edgeswarm.coordinator.planning.measure import Measurer
from edgeswarm.coordinator.planning.placement import asked_shape, fitted_shape, over_memory, place
from edgeswarm.coordinator.planning.plan_report import report
from edgeswarm.coordinator.planning.planner import NoFit, PlanResult, neighbours
from edgeswarm.coordinator.planning.planner import plan as plan_layout
from edgeswarm.coordinator.planning.segments import Segments, segments_of
from edgeswarm.errors import InvalidRequest, NotFound, PlacementError, Unimplemented
from edgeswarm.graph.inspection import quantized_estimate
from edgeswarm.graph.loading import load_checked_structure, parse_model
from edgeswarm.graph.partition import PartitionError, StagePart, balanced_cuts
from edgeswarm.graph.quantize import quantized_stage
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.graph.signature import signature_of
from edgeswarm.graph.stagefiles import split_to_files
from edgeswarm.plans import Mode, Objective, Plan, Quantization, Signature, StageSpec

log = logging.getLogger(__name__)

# Longest wait for a replaced plan's requests to finish before its stages are unloaded.
RETIRE_WAIT_S = 60.0
# Plans at most, in a fleet too large to time every link between workers, to time its neighbours' links.
NEIGHBOUR_ROUNDS = 3


class Deployer:
    def __init__(
        self, members: Members, registry: Registry, installer: Installer, measurer: Measurer
    ) -> None:
        self.members = members
        self.registry = registry
        self.installer = installer
        self.store = installer.store
        self.measurer = measurer
        self._lock = asyncio.Lock()

    async def deploy(
        self,
        name: str,
        mode: Mode,
        replicas: int,
        stages: int,
        model: StoredModel,
        fit: bool = False,
        why: str = "deploy",
        objective: Objective = Objective.THROUGHPUT,
        batching: tuple[int, float] = (0, 0.0),
        quantization: Quantization | None = None,
        states: Mapping[str, str] | None = None,
        tokenizer: str = "",
    ) -> Plan:
        """Places `name` as asked: by the planner (auto), or as replicas or a pipeline of the asked
        shape; with `fit`, on as many live workers as there are, up to what was asked. `model` is in
        the store; `quantization` names its variant to place (made by graph.quantize), if any."""
        if not name:
            raise InvalidRequest("a model needs a name")
        if batching[0] < 0 or batching[1] < 0:
            raise InvalidRequest(f"batching needs batch_max >= 0 and a delay >= 0, not {batching}")
        async with self._lock:
            plans = self.registry.plans
            live = sorted(self.members.live())
            old = plans.get(name)
            version = (old.version + 1) if old else 1
            self.store.touch(model.sha256)
            # As the store holds it now: it may have been evicted since (undeployed, then room made).
            model = await asyncio.to_thread(self.store.model, model.sha256)
            stage_data: dict[str, list[str]] = {}  # each stage's data files (inline stages: none)
            if model.external:
                # Planning by measurement would profile segments holding the weights: a model kept in
                # external data is placed as a pipeline over the live workers instead, and quantized
                # stage by stage (which gives the bits of quantizing it whole, then cutting it).
                stage_count, per_stage = (fitted_shape if fit or mode is Mode.AUTO else asked_shape)(
                    Mode.PIPELINE if mode is Mode.AUTO else mode, replicas, stages, len(live)
                )
                load = Counter(w for plan in plans.values() for w in plan.workers)
                placed = place(name, stage_count, per_stage, live, load)
                await asyncio.to_thread(self.store.make_room, model.size, *self.kept())
                signature, specs, stage_data = await asyncio.to_thread(
                    self._cut_files, name, model, stage_count, placed, quantization, states
                )
                placed_as = Mode.PIPELINE if mode is Mode.AUTO else mode
                plan = Plan(name, version, placed_as, signature, tuple(specs))
            else:
                source = model.variant_path(quantization) if quantization else model.path
                data = await asyncio.to_thread(source.read_bytes)
                if mode is Mode.AUTO:
                    parsed = await asyncio.to_thread(parse_model, name, data)
                    result, segments, _ = await self._measure_and_plan(name, parsed, objective, live)
                    specs, shards = await asyncio.to_thread(layout_specs, parsed, segments, result.chosen)
                    chosen = result.chosen
                    plan = Plan(
                        name, version, mode, signature_of(parsed), tuple(specs),
                        objective, chosen.throughput, chosen.latency,
                    )  # fmt: skip
                else:
                    stage_count, per_stage = (fitted_shape if fit else asked_shape)(
                        mode, replicas, stages, len(live)
                    )
                    load = Counter(w for plan in plans.values() for w in plan.workers)
                    placed = place(name, stage_count, per_stage, live, load)
                    cut = await asyncio.to_thread(parse_and_split, name, data, stage_count, states)
                    specs = [
                        StageSpec(p.index, sha, len(p.model), p.inputs, p.outputs, p.carry, workers)
                        for p, sha, workers in zip(cut.parts, cut.digests, placed, strict=True)
                    ]
                    shards = dict(zip(cut.digests, (p.model for p in cut.parts), strict=True))
                    plan = Plan(name, version, mode, cut.signature, tuple(specs))
                del data
                await asyncio.to_thread(self._keep_stages, shards)
            self.store.record_stages(model, {s.sha256: stage_data.get(s.sha256, []) for s in specs})
            pairs = await asyncio.to_thread(decoder_states, model.path, specs, states or {})
            plan = replace(
                plan,
                batch_max=batching[0],
                batch_delay_s=batching[1],
                quantization=quantization,
                states=pairs,
                tokenizer=tokenizer,
            )
            held = Counter(self._held(name))
            if pairs:  # a decoder's workers keep their session memory beside its weights
                held.update(self._session_memory({w for s in specs for w in s.workers}))
            why_not = over_memory(name, [(s.size, s.workers) for s in specs], held, self._limits())
            if why_not is not None:
                raise PlacementError(why_not)
            try:
                async with asyncio.TaskGroup() as tasks:
                    for spec in specs:
                        for worker in spec.workers:
                            client = self.members.client(worker)
                            tasks.create_task(
                                self.installer.install(worker, client, [spec.sha256], plan=plan)
                            )
            except* Exception as group:
                # Nothing of a failed deploy stays loaded; the caller hears the first cause.
                await self._retire(replace(plan, version=0))
                raise _first(group) from None
            plans[name] = plan
            self.registry.retired.pop(name, None)
            self.registry.requests[name] = DeployRequest(
                mode, replicas, stages, model, objective, frozenset(live), batching, self.calibrations(live),
                quantization, tuple((states or {}).items()), tokenizer,
            )  # fmt: skip
            self.registry.announce()
            log.info(
                "model_deployed model=%s version=%d mode=%s stages=%s",
                name,
                plan.version,
                mode,
                [[w[:8] for w in s.workers] for s in specs],
            )
            self.registry.tell(name, plan.version, why)
            if old is not None:
                await self._retire(old)
            return plan

    async def _measure_and_plan(
        self, name: str, model: onnx.ModelProto, objective: Objective, live: Sequence[str]
    ) -> tuple[PlanResult, Segments, dict[str, Any]]:
        """Times the model's segments on the live workers, plans, and reports the plan."""
        if not live:
            raise PlacementError(f"model {name!r}: no live worker to plan for")
        try:  # off the event loop: a model's declared shapes decide how long this takes
            inputs = await asyncio.to_thread(sample_inputs, model, 1)
        except ValueError as exc:
            raise InvalidRequest(f"model {name!r} cannot be planned by measurement: {exc}") from exc
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
        self.registry.reports[name] = document
        log.info(
            "model_planned model=%s objective=%s layout=%s predicted_rps=%.1f predicted_latency_ms=%.2f",
            name, objective, result.chosen.kind, result.chosen.throughput, 1000 * result.chosen.latency,
        )  # fmt: skip
        return result, segments, document

    async def plan_only(
        self, name: str, model: StoredModel, objective: Objective, quantization: Quantization | None = None
    ) -> dict[str, Any]:
        """What an auto deploy of `model` would place, without placing anything."""
        if model.external and quantization is None:
            raise Unimplemented(
                f"model {name!r} keeps its weights in external data: planning by measurement needs them "
                "in one file; deploy it with --mode pipeline, or plan it offline with --fleet"
            )
        source = model.variant_path(quantization) if quantization else model.path
        data = await asyncio.to_thread(source.read_bytes)
        parsed = await asyncio.to_thread(parse_model, name, data)
        document = (await self._measure_and_plan(name, parsed, objective, sorted(self.members.live())))[2]
        # The files' bytes as sent and as each quantized variant kept so far.
        return {**document, "model_bytes": {"as_sent": model.size, **model.variants}}

    def _session_memory(self, workers: Iterable[str]) -> dict[str, int]:
        """The session memory each of `workers` reserves for generation state, as last described."""
        known = self.members.descriptions
        return {w: known[w].session_memory for w in workers if w in known}

    def _limits(self) -> dict[str, int]:
        return {w: d.memory_limit for w, d in self.members.descriptions.items()}

    def _held(self, model: str) -> dict[str, int]:
        """Bytes each worker holds for the plans of other models: what its stages took as they loaded
        (as the worker last reported), else their size."""
        held: Counter[str] = Counter()
        for plan in self.registry.plans.values():
            if plan.model == model:
                continue
            for stage in plan.stages:
                for worker in stage.workers:
                    known = self.members.descriptions.get(worker)
                    measured = known.stage_memory.get(stage.sha256, 0) if known else 0
                    held[worker] += measured or stage.size
        return dict(held)

    def kept(self) -> tuple[set[str], set[str]]:
        """The models of plans in force and the stages they use: what room in the store is not made from."""
        models = {r.model.sha256 for r in self.registry.requests.values()}
        return models, set(self.registry.in_use())

    def _keep_stages(self, shards: dict[str, bytes]) -> None:
        self.store.make_room(sum(map(len, shards.values())), *self.kept())
        for data in shards.values():
            self.store.put_stage(data)

    def _cut_files(
        self,
        name: str,
        model: StoredModel,
        stage_count: int,
        placed: Sequence[tuple[str, ...]],
        quantization: Quantization | None,
        states: Mapping[str, str] | None = None,
    ) -> tuple[Signature, list[StageSpec], dict[str, list[str]]]:
        """Cuts a model kept in external data into the store, stage by stage, its weights copied range by
        range, and quantizes each stage on its own if asked: the model is never whole in memory.
        Returns also each stage's data files, by digest."""
        structure = load_checked_structure(name, model.path)

        def fits(parts: list[StagePart]) -> None:
            sizes = [
                (_weight_bytes(p, quantization), workers) for p, workers in zip(parts, placed, strict=True)
            ]
            why_not = over_memory(name, sizes, self._held(name), self._limits())
            if why_not is not None:
                raise PlacementError(why_not)

        try:
            cuts = balanced_cuts(structure, stage_count) if stage_count > 1 else []
            data: dict[str, list[str]] = {}
            with self.store.incoming() as out:
                specs = []
                for files, workers in zip(
                    split_to_files(
                        model.path, cuts, out, structure, fits, position_inputs(structure, states)
                    ),
                    placed,
                    strict=True,
                ):
                    if quantization is None:
                        sha = self.store.adopt_stage(files.model, files.data, files.data_sha256)
                        data[sha] = [files.data_sha256] if files.data is not None else []
                    else:
                        sha = self.store.put_stage(quantized_stage(name, files.model, quantization))
                        files.model.unlink()
                        if files.data is not None:
                            files.data.unlink()
                    paths = [self.store.stage_path(sha), *map(self.store.data_path, data.get(sha, []))]
                    size = sum(p.stat().st_size for p in paths)
                    p = files.part
                    specs.append(StageSpec(p.index, sha, size, p.inputs, p.outputs, p.carry, workers))
            if quantization is not None:
                self.store.add_variant_size(model, quantization, sum(s.size for s in specs))
        except PartitionError as exc:
            raise InvalidRequest(f"model {name!r} cannot be split into {stage_count} stages: {exc}") from exc
        except ValueError as exc:  # a weight's bytes not in its data file
            raise InvalidRequest(f"model {name!r}: {exc}") from exc
        return signature_of(structure), specs, data

    def calibrations(self, workers: Iterable[str]) -> tuple[tuple[str, float], ...]:
        """Each worker's last reported calibration (GFLOP/s), by id."""
        known = self.members.descriptions
        return tuple(sorted((w, known[w].calibration_gflops) for w in workers if w in known))

    async def redeploy(self, name: str, why: str = "repository load") -> Plan:
        """Places `name` again as its last deploy asked, whether it is deployed now or was undeployed."""
        request = self.registry.requests.get(name) or self.registry.retired.get(name)
        if request is None:
            known = ", ".join(sorted({*self.registry.requests, *self.registry.retired})) or "none"
            raise NotFound(f"model {name!r} was never deployed here; deploy it first (known: {known})")
        return await self.deploy(
            name,
            request.mode,
            request.replicas,
            request.stages,
            request.model,
            fit=True,
            why=why,
            objective=request.objective,
            batching=request.batching,
            quantization=request.quantization,
            states=dict(request.states),
            tokenizer=request.tokenizer,
        )

    async def undeploy(self, name: str) -> None:
        async with self._lock:
            plan = self.registry.plan(name)
            del self.registry.plans[name]
            asked = self.registry.requests.pop(name, None)
            if asked is not None:
                self.registry.retired[name] = asked
            self.registry.tell(name, 0, "undeploy")
            await self._retire(plan)
            log.info("model_undeployed model=%s version=%d", name, plan.version)

    async def _retire(self, plan: Plan) -> None:
        """Unloads the stages of `plan` that no current plan uses, once its requests have finished (or
        RETIRE_WAIT_S has passed)."""
        await self.registry.drained(plan, RETIRE_WAIT_S)
        in_use = self.registry.in_use()
        for stage in plan.stages:
            if stage.sha256 not in in_use:
                holders = [(w, self.members.client(w)) for w in stage.workers if w in self.members.clients]
                await self.installer.unload(stage.sha256, holders)


def _weight_bytes(part: StagePart, quantization: Quantization | None) -> int:
    if quantization is None:
        return part.parameter_bytes
    return quantized_estimate(onnx.load_from_string(part.model))[quantization]


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
