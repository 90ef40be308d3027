"""Membership, deploying and healing through the WorkerClient seam, with fake workers and no process.

The coordinator's real pieces (Members, Registry, Installer, Recovery, Deployer, Healer) are wired as
server.py wires them; only the workers are fakes that keep what they are sent in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.deploying.healer import Healer, replan_reason
from edgeswarm.coordinator.deploying.installer import Installer
from edgeswarm.coordinator.deploying.recovery import Recovery
from edgeswarm.coordinator.deploying.registry import DeployRequest, Registry
from edgeswarm.coordinator.fleet.members import Members
from edgeswarm.coordinator.fleet.view import WorkerInfo
from edgeswarm.coordinator.modelstore import ModelStore, StoredModel
from edgeswarm.coordinator.planning.measure import Measurer
from edgeswarm.coordinator.worker_client import SERVING, WorkerClient
from edgeswarm.dev import zoo
from edgeswarm.errors import StageUnavailable
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.plans import Mode, Plan
from tests.helpers import OPTIONS, plan_of, run_whole

FLEET = "unit"
NO_MODEL = StoredModel("0" * 64, "m", Path("."), ())


class FakeWorker:
    """A worker as the coordinator sees it through its client: shards, loaded stages, plans, health."""

    def __init__(self, worker_id: str, fleet: str = FLEET) -> None:
        self.id = worker_id
        self.fleet = fleet
        self.address = f"{worker_id}:1"
        self.shards: dict[str, bytes] = {}
        self.loaded: set[str] = set()
        self.plans: dict[str, worker_pb2.PlanManifest] = {}
        self._lost = asyncio.Event()

    def lose(self) -> None:
        """The process dies: its health stream breaks and nothing answers any more."""
        self._lost.set()

    def _answer(self) -> None:
        if self._lost.is_set():
            raise StageUnavailable(f"worker at {self.address}: connection refused")

    async def describe(self, coordinator: str = "", timeout: float = 10.0) -> worker_pb2.WorkerDescription:
        self._answer()
        return worker_pb2.WorkerDescription(
            id=self.id,
            name=self.id,
            fleet=self.fleet,
            cached_shards=sorted(self.shards),
            loaded_stages=sorted(self.loaded),
            plans=list(self.plans.values()),
            calibration_gflops=10.0,
            memory_limit=1 << 30,
        )

    async def put_shard(self, sha256: str, data: bytes, timeout: float) -> None:
        self._answer()
        self.shards[sha256] = data

    async def put_file(self, sha256: str, path: Path, external_data: bool, timeout: float) -> None:
        self._answer()
        self.shards[sha256] = await asyncio.to_thread(path.read_bytes)

    async def load_stage(
        self, sha256: str, plan: worker_pb2.PlanManifest | None, timeout: float
    ) -> worker_pb2.LoadStageResponse:
        self._answer()
        assert sha256 in self.shards, "a stage is loaded only once its shard was sent"
        self.loaded.add(sha256)
        if plan is not None:
            self.plans[plan.model] = plan
        return worker_pb2.LoadStageResponse()

    async def unload_stage(self, sha256: str, timeout: float) -> None:
        self._answer()
        self.loaded.discard(sha256)

    async def profile(
        self, shards: Sequence[str], inputs: Mapping[str, np.ndarray], repeats: int, timeout: float
    ) -> list[float]:
        raise AssertionError("a fixed-shape deploy times nothing")

    async def run_stage(self, request: worker_pb2.StageRequest, timeout: float) -> worker_pb2.StageResponse:
        raise AssertionError("no request is routed here")

    async def drain(self, reason: str, timeout: float) -> None:
        self._answer()

    async def measure_link(self, address: str, timeout: float, worker_id: str = "") -> tuple[float, float]:
        raise AssertionError("no link is timed here")

    async def ping(self, payload_bytes: int) -> tuple[float, float]:
        raise AssertionError("no link is timed here")

    async def watch_health(self) -> AsyncIterator[int]:
        self._answer()
        yield SERVING
        await self._lost.wait()
        raise StageUnavailable(f"worker at {self.address}: stream broken")

    async def check_health(self, timeout: float) -> int:
        self._answer()
        return SERVING

    async def close(self) -> None:
        pass


class Coordinator:
    """The coordinator's control plane as server.py wires it, over fake workers."""

    def __init__(self, workers: Mapping[str, FakeWorker], state: Path) -> None:
        settings = CoordinatorSettings(
            fleet=FLEET, probe_interval=0.01, probe_timeout=0.5, health_retry=0.01, recovery_window=0.0
        )
        self.workers = workers
        self.registry = Registry(lambda: self.members.live(), lambda: 0.0, settings.recovery_window)
        self.store = ModelStore(state / "store")
        self.installer = Installer(self.registry, self.store)

        def connect(info: WorkerInfo) -> WorkerClient:
            return workers[info.id]

        self.members = Members(
            settings, connect=connect, reconcile=Recovery(self.registry, self.installer).reconcile
        )
        self.members.on_change.append(self.registry.announce)
        measurer = Measurer(self.members.client, self.members.descriptions.get, self.members.address)
        self.deployer = Deployer(self.members, self.registry, self.installer, measurer)
        self.healer = Healer(self.deployer)

    @contextlib.asynccontextmanager
    async def running(self, up: int | None = None) -> AsyncIterator[None]:
        """Membership running, every worker found, and `up` of them (default all) counted up."""
        async with asyncio.TaskGroup() as tasks:
            members = tasks.create_task(self.members.run())
            for worker_id, worker in self.workers.items():
                await self.members.found(WorkerInfo(worker_id, worker_id, worker.address, FLEET))
            want = len(self.workers) if up is None else up
            await self.until(lambda: len(self.members.live()) >= want, f"{want} workers up")
            try:
                yield
            finally:
                members.cancel()

    async def until(self, condition: object, what: str, timeout: float = 5.0) -> None:
        async def poll() -> None:
            # Some of what is awaited (a refusal) changes no state that an event announces.
            while not condition():  # type: ignore[operator]  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}")


def chained(
    plan: Plan, workers: Mapping[str, FakeWorker], inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The plan's first route run stage by stage from the shards its workers were sent."""
    env = dict(inputs)
    for stage in plan.groups()[0]:
        shard = workers[stage.workers[0]].shards[stage.sha256]
        session = ort.InferenceSession(shard, OPTIONS)
        env.update(
            zip(
                stage.outputs,
                session.run(list(stage.outputs), {n: env[n] for n in stage.inputs}),
                strict=True,
            )
        )
        env = {name: env[name] for name in stage.carry}
    return env


async def test_a_lost_worker_is_planned_around_onto_the_workers_left(tmp_path: Path) -> None:
    workers = {w: FakeWorker(w) for w in ("w1", "w2", "w3")}
    swarm = Coordinator(workers, tmp_path)
    model = zoo.mlp(layers=4, width=32, in_features=16, out_features=4)
    inputs = sample_inputs(model, batch=2)
    async with swarm.running():
        first = await swarm.deployer.deploy(
            "m", Mode.PIPELINE, 0, 0, swarm.store.put("m", model.SerializeToString())
        )
        assert [s.workers for s in first.stages] == [("w1",), ("w2",), ("w3",)]
        assert all(len(w.loaded) == 1 and w.plans["m"].version == 1 for w in workers.values())
        assert await swarm.healer.heal("m", grace=0.0) is None  # nothing to heal

        workers["w2"].lose()
        await swarm.until(lambda: "w2" not in swarm.members.live(), "w2 marked down")
        second = await swarm.healer.heal("m", grace=0.0)

        assert second is not None and second.version == 2 and swarm.registry.plans["m"] is second
        assert second.workers == {"w1", "w3"} and len(second.stages) == 2
        for worker_id in ("w1", "w3"):  # each holds its new stage only: the old ones were unloaded
            assert workers[worker_id].loaded == {s.sha256 for s in second.stages if worker_id in s.workers}
        np.testing.assert_array_equal(chained(second, workers, inputs)["y"], run_whole(model, inputs)["y"])


async def test_a_worker_that_answers_with_another_id_is_kept_down(tmp_path: Path) -> None:
    impostor = FakeWorker("real")
    impostor.id = "someone-else"
    swarm = Coordinator({"real": impostor}, tmp_path)
    async with swarm.running(up=0):
        await swarm.until(lambda: "real" in swarm.members._refusals, "the impostor refused")
        assert swarm.members.live() == frozenset()
        assert "answers as worker someone-" in swarm.members._refusals["real"]


async def test_a_restarted_worker_gets_back_the_stages_of_the_plans_in_force(tmp_path: Path) -> None:
    workers = {w: FakeWorker(w) for w in ("w1", "w2")}
    swarm = Coordinator(workers, tmp_path)
    model = zoo.mlp(layers=2, width=16, in_features=8, out_features=2)
    async with swarm.running():
        plan = await swarm.deployer.deploy(
            "m", Mode.REPLICAS, 0, 0, swarm.store.put("m", model.SerializeToString())
        )
        workers["w2"].lose()
        await swarm.until(lambda: swarm.members.live() == {"w1"}, "w2 marked down")

        reborn = FakeWorker("w2")  # its cache is gone: the shard must be sent again
        workers["w2"] = reborn
        await swarm.members.found(WorkerInfo("w2", "w2", "w2:2", FLEET))
        await swarm.until(lambda: "w2" in swarm.members.live(), "w2 up again")
        assert reborn.loaded == {plan.stages[0].sha256} and reborn.plans["m"].version == plan.version


def request(mode: Mode, fleet: frozenset[str] = frozenset(), **calibrations: float) -> DeployRequest:
    return DeployRequest(mode, 0, 0, NO_MODEL, fleet=fleet, calibrations=tuple(sorted(calibrations.items())))


def test_a_worker_down_within_its_grace_is_not_yet_planned_around() -> None:
    plan = plan_of(("a",), ("b",))
    ask = request(Mode.PIPELINE)
    live = frozenset({"a"})
    assert replan_reason(plan, ask, live, {"b": 10.0}, now=14.0, grace=5.0, calibrations={}) is None
    assert (
        replan_reason(plan, ask, live, {"b": 10.0}, now=15.0, grace=5.0, calibrations={}) == "workers gone: b"
    )


def test_an_auto_plan_follows_a_joining_worker_and_a_drifted_figure() -> None:
    plan = plan_of(("a", "b"))
    planned_for = frozenset({"a", "b"})
    ask = request(Mode.AUTO, planned_for, a=10.0, b=10.0)
    same = {"a": 10.5, "b": 9.5}
    assert replan_reason(plan, ask, planned_for, {}, 0.0, 5.0, same) is None
    assert replan_reason(plan, ask, planned_for | {"c"}, {}, 0.0, 5.0, same) == "3 workers live"
    moved = replan_reason(plan, ask, planned_for, {}, 0.0, 5.0, {"a": 10.0, "b": 2.0})
    assert moved == "figures changed: b 10.0 -> 2.0 GFLOP/s"
