import pytest

from edgeswarm.coordinator.fleet.bans import BanList
from edgeswarm.coordinator.fleet.view import DOWN, UP, FleetView, WorkerInfo
from edgeswarm.coordinator.planning.placement import asked_shape, place
from edgeswarm.coordinator.serving.route_choice import choose_route, stages_without_workers
from edgeswarm.errors import InvalidRequest, PlacementError, StageUnavailable
from edgeswarm.plans import Plan, Signature, StageSpec
from tests.helpers import plan_of


def test_route_takes_one_live_worker_per_stage_least_loaded_first() -> None:
    plan = plan_of(("a", "b"), ("c", "d"))
    route = choose_route(plan, frozenset("abcd"), lambda w: False, {"a": 3, "d": 1})
    assert [hop.workers for hop in route] == [("b", "a"), ("c", "d")]
    assert [hop.stage for hop in route] == ["sha0", "sha1"]


def test_idle_replicas_take_turns() -> None:
    plan = plan_of(("a", "b", "c"))
    firsts = [
        choose_route(plan, frozenset("abc"), lambda w: False, {}, turn)[0].workers[0] for turn in range(6)
    ]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_dead_and_banned_workers_are_left_out() -> None:
    plan = plan_of(("a", "b", "c"))
    route = choose_route(plan, frozenset("bc"), lambda w: w == "b", {})
    assert route[0].workers == ("c",)


def test_a_stage_with_nobody_is_named() -> None:
    plan = plan_of(("a",), ("b", "c"))
    with pytest.raises(StageUnavailable, match=r"stage 2 of 2 has no live worker \(b banned, c down\)"):
        choose_route(plan, frozenset("ab"), lambda w: w == "b", {})


def test_stages_without_workers() -> None:
    plan = plan_of(("a", "b"), ("c",), ("d", "e"))
    assert stages_without_workers(plan, frozenset("abcde")) == []
    assert stages_without_workers(plan, frozenset("bd")) == [1]


def test_ban_doubles_and_is_forgiven() -> None:
    bans = BanList(initial=0.5, maximum=2.0)
    assert bans.ban("a", now=0.0) == 0.5
    assert bans.banned("a", 0.4) and not bans.banned("a", 0.6)
    assert bans.ban("a", now=1.0) == 1.0
    assert bans.ban("a", now=3.0) == 2.0
    assert bans.ban("a", now=10.0) == 2.0  # capped
    bans.forgive("a")
    assert bans.ban("a", now=20.0) == 0.5


def test_fleet_view_keeps_state_unless_the_address_changes() -> None:
    view = FleetView().upsert(WorkerInfo("w1", "one", "127.0.0.1:1")).mark("w1", UP)
    assert view.live() == {"w1"}
    assert view.upsert(WorkerInfo("w1", "one", "127.0.0.1:1")).live() == {"w1"}
    moved = view.upsert(WorkerInfo("w1", "one", "127.0.0.1:2"))
    assert moved.get("w1").state == DOWN  # type: ignore[union-attr]
    assert moved.address("w1") == "127.0.0.1:2"


def test_placement_spreads_stages_and_replicas_over_distinct_workers() -> None:
    assert place("m", 2, 2, ["a", "b", "c", "d"], {}) == [("a", "c"), ("b", "d")]
    assert place("m", 1, 2, ["a", "b", "c"], {"a": 2}) == [("b", "c")]


def test_placement_says_what_is_missing() -> None:
    with pytest.raises(PlacementError, match="3 stage\\(s\\) x 1 replica\\(s\\) need 3 live workers; 2 live"):
        place("m", 3, 1, ["a", "b"], {})


def test_shape_defaults() -> None:
    assert asked_shape("replicas", 0, 0, live=3) == (1, 3)
    assert asked_shape("pipeline", 0, 0, live=3) == (3, 1)
    assert asked_shape("pipeline", 2, 2, live=4) == (2, 2)
    with pytest.raises(InvalidRequest, match="mode must be one of"):
        asked_shape("sideways", 0, 0, live=3)


def test_groups_are_routes_side_by_side_and_the_least_loaded_serves() -> None:
    replicas = StageSpec(0, "whole", 1, ("x",), ("y",), ("y",), ("a", "b"), group=0)
    first = StageSpec(0, "front", 1, ("x",), ("h",), ("h",), ("c",), group=1)
    second = StageSpec(1, "back", 1, ("h",), ("y",), ("y",), ("d",), group=1)
    plan = Plan("m", 1, "auto", Signature((), ()), (replicas, first, second))
    busy = {"a": 2, "b": 2}
    assert [hop.stage for hop in choose_route(plan, frozenset("abcd"), lambda w: False, busy)] == [
        "front",
        "back",
    ]
    assert [hop.stage for hop in choose_route(plan, frozenset("abc"), lambda w: False, busy)] == ["whole"]
    assert stages_without_workers(plan, frozenset("ab")) == []
    assert stages_without_workers(plan, frozenset("cd")) == []
    assert stages_without_workers(plan, frozenset("c"))  # no route complete
    with pytest.raises(StageUnavailable, match="stage 2 of 2 of route 2 has no live worker"):
        choose_route(plan, frozenset("c"), lambda w: False, {})


def test_a_slow_replica_waits_until_the_fast_one_is_that_many_times_as_loaded() -> None:
    plan = plan_of(("fast", "slow"))
    latency = {"fast": 0.02, "slow": 0.1}.__getitem__  # 5 times as slow
    live = frozenset(plan.stages[0].workers)
    for busy, first in [(0, "fast"), (3, "fast"), (4, "fast"), (5, "slow")]:
        route = choose_route(plan, live, lambda w: False, {"fast": busy}, 0, latency)
        assert route[0].workers[0] == first, busy


def test_replicas_within_twice_each_others_latency_still_take_turns() -> None:
    plan = plan_of(("a", "b"))
    latency = {"a": 0.02, "b": 0.035}.__getitem__
    routes = [choose_route(plan, frozenset("ab"), lambda w: False, {}, turn, latency) for turn in range(4)]
    firsts = [route[0].workers[0] for route in routes]
    assert firsts == ["a", "b", "a", "b"]
