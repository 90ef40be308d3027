"""Measurement: machine classes by calibration, drift of a worker's figures (pure), and the cache of
links between workers (against a scripted worker)."""

import asyncio
import math

import grpc
import pytest

from edgeswarm.coordinator.planning.measure import (
    DRIFT_TOLERANCE,
    LINK_TTL_S,
    Measurer,
    drifted,
    machine_classes,
)
from edgeswarm.errors import from_rpc_error


def test_workers_within_15_percent_of_the_slowest_of_a_class_share_it() -> None:
    calibrations = {"a": 60.0, "b": 68.0, "c": 70.0, "d": 30.0, "e": 120.0}
    assert machine_classes(calibrations) == [["d"], ["a", "b"], ["c"], ["e"]]
    assert machine_classes({}) == []


def test_drift_is_a_move_of_more_than_the_tolerance_either_way() -> None:
    then = {"a": 60.0, "b": 60.0, "c": 60.0, "gone": 60.0}
    now = {"a": 60.0 * (1 + DRIFT_TOLERANCE) - 1, "b": 14.8, "c": 100.0, "new": 5.0}
    assert drifted(then, now) == {"b": (60.0, 14.8), "c": (60.0, 100.0)}


def test_an_unknown_figure_never_counts_as_drift() -> None:
    assert drifted({"a": 0.0, "b": 50.0}, {"a": 80.0, "b": 0.0}) == {}


class Refused(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"refused with {self._code.name}"


class FakeWorker:
    """A WorkerClient whose measure_link answers from a script: figures, or a gRPC error, translated
    as the real client translates it."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def measure_link(self, address: str, timeout: float, worker_id: str = "") -> tuple[float, float]:
        self.asked.append(address)
        answer = self.answers.pop(0)
        if isinstance(answer, grpc.RpcError):
            raise from_rpc_error(answer)
        assert isinstance(answer, tuple)
        return answer


def test_a_pair_is_cached_unless_one_end_could_not_reach_the_other() -> None:
    fast = (0.001, 1e8)
    worker = FakeWorker(
        fast, Refused(grpc.StatusCode.UNAVAILABLE), fast, Refused(grpc.StatusCode.UNIMPLEMENTED)
    )
    now = [0.0]
    measurer = Measurer(lambda w: worker, lambda w: None, lambda w: f"{w}:1", clock=lambda: now[0])

    async def scenario() -> None:
        first = await measurer.pair("a", "b")
        assert first is not None and first.rtt == 0.001
        assert await measurer.pair("a", "b") is first  # cached
        cut = await measurer.pair("a", "c")
        assert cut is not None and cut.rtt == math.inf and measurer.pairs[("a", "c")] is cut
        again = await measurer.pair("a", "c")  # an unreachable pair is timed again
        assert again is not None and again.rtt == 0.001
        assert await measurer.pair("a", "d") is None  # a worker without MeasureLink: estimate
        now[0] = LINK_TTL_S + 1
        with pytest.raises(IndexError):  # expired: asked again (and the script is out of answers)
            await measurer.pair("a", "b")

    asyncio.run(scenario())
    assert worker.asked == ["b:1", "c:1", "c:1", "d:1", "b:1"]
