"""The planner against brute force, and its choices on fleets whose answer is known."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import numpy as np
import pytest

from edgeswarm.coordinator.planning.planner import (
    ModelProfile,
    NoFit,
    PeerLink,
    WorkerFigures,
    _Costs,
    best_pipeline,
    neighbours,
    plan,
)


def random_instance(
    rng: random.Random, workers: int, segments: int
) -> tuple[ModelProfile, list[WorkerFigures]]:
    base = [rng.uniform(0.5, 5.0) for _ in range(segments)]
    figures = [
        WorkerFigures(
            id=f"w{i}",
            memory=rng.randint(2, 4 * segments) * 10,
            seconds=tuple(t * rng.choice([1.0, 2.0, 4.0]) * rng.uniform(0.9, 1.1) for t in base),
            bandwidth=rng.uniform(50.0, 500.0),
            rtt=rng.uniform(0.0, 0.5),
        )
        for i in range(workers)
    ]
    # Some pairs have a measured link of their own, listed by either end.
    for a, b in itertools.combinations(range(workers), 2):
        if rng.random() < 0.4:
            holder, peer = (a, b) if rng.random() < 0.5 else (b, a)
            link = PeerLink(figures[peer].id, rng.uniform(0.0, 2.0), rng.uniform(5.0, 500.0))
            figures[holder] = replace(figures[holder], peers=(*figures[holder].peers, link))
    model = ModelProfile(
        segment_bytes=tuple(rng.randint(1, 6) * 10 for _ in range(segments)),
        boundary_bytes=tuple(rng.randint(1, 100) for _ in range(segments - 1)),
        input_bytes=rng.randint(1, 100),
        output_bytes=rng.randint(1, 100),
    )
    return model, figures


def brute_force(model: ModelProfile, workers: list[WorkerFigures]) -> float:
    """The least bottleneck over every ordered subset of workers and every split of the segments."""
    costs = _Costs(model, workers)
    s = model.segments
    best = math.inf
    for k in range(1, min(len(workers), s) + 1):
        for order in itertools.permutations(range(len(workers)), k):
            for cuts in itertools.combinations(range(1, s), k - 1):
                bounds = (0, *cuts, s)
                if not all(costs.fits(w, a, b) for w, a, b in zip(order, bounds, bounds[1:], strict=False)):
                    continue
                previous, worst = None, 0.0
                for w, a, b in zip(order, bounds, bounds[1:], strict=False):
                    worst = max(worst, costs.stage(previous, w, a, b))
                    previous = w
                best = min(best, worst)
    return best


@pytest.mark.parametrize("seed", range(24))
def test_the_pipeline_bottleneck_equals_the_exhaustive_optimum(seed: int) -> None:
    rng = random.Random(seed)
    # Up to 6 workers and 12 segments, the largest instances fewer times (brute force is slow).
    workers, segments = (
        [(6, 12), (6, 8), (5, 10), (4, 12)][seed % 4]
        if seed < 8
        else (
            rng.randint(1, 5),
            rng.randint(1, 9),
        )
    )
    if seed < 8 and seed % 4 == 0 and seed:
        workers, segments = 5, 12
    model, figures = random_instance(rng, workers, segments)
    found, exact = best_pipeline(model, figures)
    want = brute_force(model, figures)
    assert exact
    if want == math.inf:
        assert found is None
    else:
        assert found is not None
        assert math.isclose(found.bottleneck, want, rel_tol=1e-9), (found, want)


def test_the_plan_is_deterministic_and_respects_memory() -> None:
    model, figures = random_instance(random.Random(7), 5, 9)
    first, second = plan(model, figures), plan(model, list(reversed(figures)))
    assert first == second
    costs = {w.id: w for w in figures}
    for pipeline in first.chosen.pipelines:
        for stage in pipeline.stages:
            held = sum(model.segment_bytes[stage.first : stage.last + 1])
            assert held <= costs[stage.worker].memory


def equal_fleet(count: int, memory: int, seconds: tuple[float, ...]) -> list[WorkerFigures]:
    return [WorkerFigures(f"w{i}", memory, seconds, bandwidth=1e9, rtt=1e-4) for i in range(count)]


MODEL = ModelProfile(segment_bytes=(100,) * 6, boundary_bytes=(1000,) * 5, input_bytes=1000, output_bytes=100)


def test_a_model_that_fits_everywhere_on_equal_workers_becomes_replicas() -> None:
    result = plan(MODEL, equal_fleet(3, 10_000, (0.01,) * 6))
    assert result.chosen.kind == "replicas"
    assert len(result.chosen.pipelines) == 3
    assert any(layout.kind == "pipeline" for layout in result.alternatives)


def test_a_model_too_big_for_any_worker_becomes_a_pipeline_that_fits() -> None:
    result = plan(MODEL, equal_fleet(3, 250, (0.01,) * 6))
    assert result.chosen.kind in ("pipeline", "hybrid")
    for pipeline in result.chosen.pipelines:
        assert all(stage.last - stage.first + 1 <= 2 for stage in pipeline.stages)
    with pytest.raises(NoFit, match="no layout holds the model"):
        plan(MODEL, equal_fleet(2, 250, (0.01,) * 6))


def test_a_slow_worker_gets_less_work() -> None:
    fast = WorkerFigures("fast", 10**9, (0.01,) * 6, bandwidth=1e9)
    slow = WorkerFigures("slow", 10**9, (0.04,) * 6, bandwidth=1e9)
    found, _ = best_pipeline(MODEL, [fast, slow])
    assert found is not None
    segments = {s.worker: s.last - s.first + 1 for s in found.stages}
    assert segments.get("slow", 0) < segments["fast"]
    # As replicas the pair does 1/0.06 + 1/0.24 requests/s; a pipeline cannot beat that here.
    assert plan(MODEL, [fast, slow]).chosen.kind == "replicas"


def test_a_measured_slow_link_keeps_two_workers_from_being_neighbours() -> None:
    # Four equal workers, none of which holds the model; the first two neighbours' link is made slow.
    figures = equal_fleet(4, 300, (0.01,) * 6)
    without = best_pipeline(MODEL, figures)[0]
    assert without is not None
    first, second = without.stages[0].worker, without.stages[1].worker
    slow = PeerLink(second, rtt=0.2, bandwidth=1e4)
    figures = [replace(f, peers=(slow,)) if f.id == first else f for f in figures]
    found = best_pipeline(MODEL, figures)[0]
    assert found is not None
    neighbours = {frozenset((a.worker, b.worker)) for a, b in itertools.pairwise(found.stages)}
    assert frozenset((first, second)) not in neighbours
    assert math.isclose(found.bottleneck, without.bottleneck)
    # A pair one end could not reach is never taken.
    w0, w1 = equal_fleet(2, 300, (0.01,) * 6)
    figures = [replace(w0, peers=(PeerLink(w1.id, rtt=math.inf, bandwidth=0.0),)), w1]
    assert best_pipeline(MODEL, figures)[0] is None


def test_neighbours_are_the_consecutive_stages_of_each_pipeline() -> None:
    from edgeswarm.coordinator.planning.planner import Layout, Pipeline, Stage

    layout = Layout(
        "hybrid",
        (
            Pipeline((Stage("r", 0, 5, 1.0),)),
            Pipeline((Stage("a", 0, 1, 1.0), Stage("b", 2, 3, 1.0), Stage("c", 4, 5, 1.0))),
        ),
    )
    assert neighbours(layout) == [("a", "b"), ("b", "c")]


def test_the_latency_objective_takes_the_fastest_route() -> None:
    fast = WorkerFigures("fast", 10**9, (0.01,) * 6)
    slow = WorkerFigures("slow", 10**9, (0.04,) * 6)
    result = plan(MODEL, [slow, fast], objective="latency")
    assert [s.worker for p in result.chosen.pipelines for s in p.stages] == ["fast"]


def test_the_fit_objective_uses_the_fewest_workers_that_hold_the_model() -> None:
    figures = equal_fleet(4, 300, (0.01,) * 6)
    result = plan(MODEL, figures, objective="fit")
    assert [len(p.stages) for p in result.chosen.pipelines] == [2]


def test_large_fleets_are_planned_by_the_heuristic() -> None:
    model, figures = random_instance(random.Random(3), 12, 40)
    result = plan(model, figures)
    assert not result.exact
    assert 0 < result.chosen.throughput <= result.bound


def test_a_planned_layout_becomes_groups_whose_chained_stages_are_bit_exact() -> None:
    import onnxruntime as ort

    from edgeswarm.coordinator.deploying.deployer import layout_specs
    from edgeswarm.coordinator.planning.planner import Layout, Pipeline, Stage
    from edgeswarm.coordinator.planning.segments import segments_of
    from edgeswarm.dev import zoo
    from edgeswarm.graph.samples import sample_inputs
    from tests.helpers import OPTIONS, run_whole

    model = zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=8)
    inputs = sample_inputs(model, batch=1)
    segments = segments_of(model, inputs)
    last = len(segments.parts) - 1
    layout = Layout(
        "hybrid",
        (
            Pipeline((Stage("r1", 0, last, 1.0),)),
            Pipeline((Stage("r2", 0, last, 1.0),)),
            Pipeline((Stage("p1", 0, 0, 1.0), Stage("p2", 1, last, 1.0))),
        ),
    )
    specs, shards = layout_specs(model, segments, layout)
    assert [(s.group, s.index, s.workers) for s in specs] == [
        (0, 0, ("r1", "r2")),
        (1, 0, ("p1",)),
        (1, 1, ("p2",)),
    ]
    want = run_whole(model, inputs)
    env = dict(inputs)
    for spec in specs[1:]:
        session = ort.InferenceSession(shards[spec.sha256], OPTIONS)
        env.update(
            zip(spec.outputs, session.run(list(spec.outputs), {n: env[n] for n in spec.inputs}), strict=True)
        )
    np.testing.assert_array_equal(env["hidden"], want["hidden"])


def test_a_fleet_file_gives_figures_from_speed_or_segment_times() -> None:
    from edgeswarm.coordinator.planning.fleetfile import figures_from
    from edgeswarm.coordinator.planning.segments import segments_of
    from edgeswarm.dev import zoo
    from edgeswarm.graph.samples import sample_inputs

    model = zoo.mlp(layers=4, width=32, in_features=16, out_features=4)
    segments = segments_of(model, sample_inputs(model))
    count = len(segments.parts)
    figures = figures_from(
        {
            "workers": [
                {"name": "a", "memory": 1e9, "gflops": 2},
                {"name": "b", "memory": 5, "seconds": [0.1] * count},
            ]
        },
        segments,
    )
    assert figures[0].seconds == tuple(f / 2e9 for f in segments.flops) and figures[1].memory == 5
    linked = figures_from(
        {
            "workers": [{"name": "a", "memory": 1e9, "gflops": 2}, {"name": "b", "memory": 1e9, "gflops": 2}],
            "links": [{"between": ["a", "b"], "rtt": 0.05, "bandwidth": 1e6}],
        },
        segments,
    )
    assert linked[0].peers == (PeerLink("b", 0.05, 1e6),) and linked[1].peers == ()
    for bad, why in [
        ([{"between": ["a", "z"]}], "link 1 of the fleet file: needs two different workers"),
        ([{"between": ["a", "a"]}], "needs two different workers"),
        ([{"between": ["a", "b"], "bandwidth": 0}], "bandwidth > 0"),
        ([{"rtt": 1}], "link 1"),
    ]:
        with pytest.raises(ValueError, match=why):
            figures_from(
                {
                    "workers": [{"name": "a", "memory": 1, "gflops": 1}] * 1
                    + [{"name": "b", "memory": 1, "gflops": 1}],
                    "links": bad,
                },
                segments,
            )
    with pytest.raises(ValueError, match="worker 'c' of the fleet file"):
        figures_from({"workers": [{"name": "c", "memory": 1}]}, segments)
