"""The router against a fake transport: failover, bans, deadlines."""

import asyncio
from collections import Counter

import pytest

from edgeswarm._proto.edgeswarm.v1 import tensor_pb2, worker_pb2
from edgeswarm.coordinator.fleet.bans import BanList
from edgeswarm.coordinator.serving.router import Router
from edgeswarm.errors import DeadlineExceeded, InvalidRequest, StageUnavailable
from tests.helpers import plan_of


class Fleet:
    def __init__(self, live: str) -> None:
        self._live = frozenset(live)
        self.in_flight: Counter[str] = Counter()
        self.now = 0.0
        self.bans = BanList(0.5, 30.0)

    def live(self) -> frozenset[str]:
        return self._live

    def banned(self, worker_id: str) -> bool:
        return self.bans.banned(worker_id, self.now)

    def ban(self, worker_id: str) -> float:
        return self.bans.ban(worker_id, self.now)

    def address(self, worker_id: str) -> str:
        return f"{worker_id}:1"

    def forgive(self, worker_id: str) -> None:
        self.bans.forgive(worker_id)


class Transport:
    def __init__(self, failures: dict[str, Exception]) -> None:
        self.failures = failures
        self.calls: list[tuple[str, list[str]]] = []

    async def run(
        self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse:
        self.calls.append((worker_id, [hop.worker_ids[0] for hop in request.route]))
        if worker_id in self.failures:
            raise self.failures[worker_id]
        return worker_pb2.StageResponse(tensors=[tensor_pb2.Tensor(name="y", datatype="FP32")])


TENSORS = [tensor_pb2.Tensor(name="x", datatype="FP32")]


async def test_a_dead_replica_is_banned_and_the_request_retried_elsewhere() -> None:
    fleet = Fleet("ab")
    transport = Transport({"a": StageUnavailable("connection refused")})
    router = Router(fleet, transport, clock=lambda: fleet.now)
    out = await router.infer(plan_of(("a", "b")), TENSORS, ["y"], "r1", timeout=5)
    assert [t.name for t in out] == ["y"]
    assert [c[0] for c in transport.calls] == ["a", "b"]
    assert fleet.banned("a") and not fleet.banned("b")
    assert sum(fleet.in_flight.values()) == 0


async def test_a_failure_further_down_bans_the_worker_it_names() -> None:
    fleet = Fleet("abcd")

    class DeadC(Transport):
        async def run(
            self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
        ) -> worker_pb2.StageResponse:
            self.calls.append((worker_id, [hop.worker_ids[0] for hop in request.route]))
            if request.route[1].worker_ids[0] == "c":
                raise StageUnavailable("stage 2 gone", failed=("c",))
            return worker_pb2.StageResponse()

    transport = DeadC({})
    router = Router(fleet, transport, clock=lambda: fleet.now)
    await router.infer(plan_of(("a",), ("c", "d")), TENSORS, ["y"], "r1", timeout=5)
    assert fleet.banned("c") and not fleet.banned("a")
    assert transport.calls[-1] == ("a", ["a", "d"])


async def test_the_last_hop_returns_the_outputs_asked_for() -> None:
    fleet = Fleet("ab")
    seen: list[worker_pb2.StageRequest] = []

    class Recording(Transport):
        async def run(
            self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
        ) -> worker_pb2.StageResponse:
            seen.append(request)
            return await super().run(worker_id, request, timeout)

    await Router(fleet, Recording({})).infer(plan_of(("a",), ("b",)), TENSORS, ["z"], "r1", timeout=5)
    assert [list(h.carry) for h in seen[0].route] == [["y"], ["z"]]
    assert list(seen[0].route[1].addresses) == ["b:1"]


async def test_fatal_errors_are_not_retried() -> None:
    fleet = Fleet("ab")
    transport = Transport({"a": InvalidRequest("bad shape"), "b": InvalidRequest("bad shape")})
    with pytest.raises(InvalidRequest):
        await Router(fleet, transport).infer(plan_of(("a", "b")), TENSORS, ["y"], "r1", timeout=5)
    assert len(transport.calls) == 1


async def test_no_route_left_names_the_stage() -> None:
    fleet = Fleet("ab")
    transport = Transport({w: StageUnavailable("refused") for w in "ab"})
    with pytest.raises(StageUnavailable, match="stage 1 of 1 has no live worker"):
        await Router(fleet, transport, clock=lambda: fleet.now).infer(
            plan_of(("a", "b")), TENSORS, ["y"], "r1", timeout=5
        )


async def test_attempts_are_bounded_even_when_the_clock_stands_still() -> None:
    fleet = Fleet("ab")
    fleet.ban = lambda w: 0.0  # type: ignore[method-assign]
    transport = Transport({w: StageUnavailable("refused") for w in "ab"})
    with pytest.raises(StageUnavailable, match="refused"):
        await Router(fleet, transport, clock=lambda: 0.0).infer(plan_of(("a", "b")), TENSORS, ["y"], "r1", 5)
    assert len(transport.calls) == Router.MAX_ATTEMPTS


async def test_deadline_ends_the_retries() -> None:
    fleet = Fleet("a")
    clock = iter([0.0, 0.0, 10.0, 10.0])

    class Slow(Transport):
        async def run(
            self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
        ) -> worker_pb2.StageResponse:
            await asyncio.sleep(0)
            raise StageUnavailable("refused")

    fleet.ban = lambda w: 0.0  # type: ignore[method-assign]
    with pytest.raises(DeadlineExceeded, match="after 1 attempt"):
        await Router(fleet, Slow({}), clock=lambda: next(clock)).infer(
            plan_of(("a",)), TENSORS, ["y"], "r1", timeout=5
        )


async def test_a_slow_replica_is_passed_over_then_tried_again_as_its_estimate_decays() -> None:
    fleet = Fleet("ab")
    seconds = {"a": 0.01, "b": 1.0}

    class Timed(Transport):
        async def run(
            self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
        ) -> worker_pb2.StageResponse:
            fleet.now += seconds[worker_id]
            return await super().run(worker_id, request, timeout)

    transport = Timed({})
    router = Router(fleet, transport, clock=lambda: fleet.now, latency_decay=0.1)
    for i in range(100):
        await router.infer(plan_of(("a", "b")), TENSORS, ["y"], f"r{i}", timeout=5)
    firsts = [c[0] for c in transport.calls]
    # Idle replicas take turns until b shows it is slow; then b only gets a request now and again,
    # once its estimate has decayed below twice a's (0.1 * ln(1.0 / 0.02) = 0.39 s, ~40 requests on a).
    assert firsts[:2] == ["a", "b"]
    assert 2 <= firsts.count("b") <= 4, firsts
    assert firsts[2:40].count("b") == 0


class Stuck(Transport):
    """Worker "a" answers after `seconds["a"]`; one that takes longer than it was given runs out of time."""

    def __init__(self, fleet: Fleet, seconds: dict[str, float]) -> None:
        super().__init__({})
        self.fleet = fleet
        self.seconds = seconds
        self.budgets: list[float] = []

    async def run(
        self, worker_id: str, request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse:
        self.budgets.append(timeout)
        if self.seconds[worker_id] > timeout:
            self.fleet.now += timeout
            self.calls.append((worker_id, []))
            raise DeadlineExceeded(f"{worker_id}: deadline exceeded")
        self.fleet.now += self.seconds[worker_id]
        return await super().run(worker_id, request, timeout)


async def test_a_worker_stuck_far_past_what_the_model_takes_is_banned_and_the_request_retried() -> None:
    fleet = Fleet("ab")
    transport = Stuck(fleet, {"a": 0.1, "b": 0.1})
    router = Router(fleet, transport, clock=lambda: fleet.now, attempt_factor=10, attempt_floor=0.5)
    for i in range(2):  # one on each
        await router.infer(plan_of(("a", "b")), TENSORS, ["y"], f"r{i}", timeout=30)
    assert transport.budgets[0] == 30  # nothing known of the model yet: the whole time
    transport.seconds["a"] = 1e9  # stuck
    out = await router.infer(plan_of(("a", "b")), TENSORS, ["y"], "r2", timeout=30)
    assert [t.name for t in out] == ["y"]
    # 10 x the 0.1 s the model took: a is given up after 1 s and banned; b, given twice that, answers.
    assert [c[0] for c in transport.calls[2:]] == ["a", "b"]
    assert transport.budgets[2:] == [pytest.approx(1.0), pytest.approx(2.0)]
    assert fleet.banned("a") and not fleet.banned("b")


async def test_a_request_slow_everywhere_gets_longer_attempts_and_in_the_end_its_whole_time() -> None:
    fleet = Fleet("ab")
    transport = Stuck(fleet, {"a": 0.1, "b": 0.1})
    fleet.ban = lambda w: 0.0  # type: ignore[method-assign]
    router = Router(fleet, transport, clock=lambda: fleet.now, attempt_factor=10, attempt_floor=0.5)
    await router.infer(plan_of(("a",)), TENSORS, ["y"], "r0", timeout=30)
    transport.seconds["a"] = 6.0  # a big request: 60 x the model's usual time, but it does finish
    await router.infer(plan_of(("a",)), TENSORS, ["y"], "r1", timeout=30)
    assert transport.budgets[1:] == [pytest.approx(b) for b in (1.0, 2.0, 4.0, 8.0)]


async def test_a_stuck_worker_with_nothing_known_of_the_model_is_not_banned_for_the_deadline() -> None:
    fleet = Fleet("a")
    transport = Stuck(fleet, {"a": 1e9})
    router = Router(fleet, transport, clock=lambda: fleet.now)
    with pytest.raises(DeadlineExceeded, match="deadline exceeded"):
        await router.infer(plan_of(("a",)), TENSORS, ["y"], "r0", timeout=5)
    assert not fleet.banned("a")
