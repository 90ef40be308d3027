"""What each model has served, as Triton's ModelStatistics reports it and its nv_inference_* metrics
count it: one record of every request the coordinator answered, kept by (model, version).

A request's time is split into phases as the coordinator sees them: queue (from arrival until its
plan could be served, such as a restarted coordinator waiting for its workers), compute input
(checking the inputs), compute infer (the route, retries included) and compute output (checking and
returning the outputs). Executions count requests: dynamic batching at a worker's entry stage may
run several in one ONNX Runtime call, which the coordinator does not see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from edgeswarm.metrics import MODEL_REQUEST_SECONDS

NS = 1_000_000_000


@dataclass
class Duration:
    """How many times, and how many nanoseconds in all."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += round(seconds * NS)


@dataclass(frozen=True)
class Phases:
    """Seconds of one successful request in each phase."""

    queue: float
    compute_input: float
    compute_infer: float
    compute_output: float

    @property
    def total(self) -> float:
        return self.queue + self.compute_input + self.compute_infer + self.compute_output


@dataclass
class ModelStats:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0


class Statistics:
    """`now_ms()` gives the wall-clock time in milliseconds since the epoch (for last_inference)."""

    def __init__(self, now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._now_ms = now_ms
        self._models: dict[tuple[str, str], ModelStats] = {}
        # Each model's latency histogram, looked up once: a label lookup per request costs more
        # than the observation.
        self._latency: dict[str, Histogram] = {}

    def _stats(self, model: str, version: str) -> ModelStats:
        stats = self._models.get((model, version))
        if stats is None:
            stats = self._models[(model, version)] = ModelStats()
        return stats

    def succeeded(self, model: str, version: str, batch: int, phases: Phases) -> None:
        stats = self._stats(model, version)
        stats.success.add(phases.total)
        stats.queue.add(phases.queue)
        stats.compute_input.add(phases.compute_input)
        stats.compute_infer.add(phases.compute_infer)
        stats.compute_output.add(phases.compute_output)
        stats.inference_count += batch
        stats.execution_count += 1
        stats.last_inference_ms = self._now_ms()
        latency = self._latency.get(model)
        if latency is None:
            latency = self._latency[model] = MODEL_REQUEST_SECONDS.labels(model)
        latency.observe(phases.total)

    def failed(self, model: str, version: str, seconds: float) -> None:
        stats = self._stats(model, version)
        stats.fail.add(seconds)
        stats.last_inference_ms = self._now_ms()

    def of(self, model: str = "", version: str = "") -> list[tuple[str, str, ModelStats]]:
        """(model, version, stats) of every model served, or of `model` (and `version`) only."""
        return [
            (m, v, stats)
            for (m, v), stats in sorted(self._models.items())
            if model in ("", m) and version in ("", v)
        ]


# Triton's metric names and meanings, by model and version: requests that succeeded or failed,
# inferences (a request of batch 8 counts 8), model executions, and cumulative microseconds end to
# end (successes and failures), waiting to be routed, and in each compute phase.
_TRITON: tuple[tuple[str, str, Callable[[ModelStats], float]], ...] = (
    ("nv_inference_request_success", "Successful inference requests", lambda s: s.success.count),
    ("nv_inference_request_failure", "Failed inference requests", lambda s: s.fail.count),
    ("nv_inference_count", "Inferences performed (a batch of N counts N)", lambda s: s.inference_count),
    ("nv_inference_exec_count", "Model executions performed", lambda s: s.execution_count),
    (
        "nv_inference_request_duration_us",
        "Cumulative end-to-end request handling time, in us",
        lambda s: (s.success.ns + s.fail.ns) / 1000,
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative time waiting to be routed, in us",
        lambda s: s.queue.ns / 1000,
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative time checking request inputs, in us",
        lambda s: s.compute_input.ns / 1000,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative time on the route, in us",
        lambda s: s.compute_infer.ns / 1000,
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative time checking and returning outputs, in us",
        lambda s: s.compute_output.ns / 1000,
    ),
)


class TritonMetrics(Collector):
    """Exposes `statistics` under Triton's metric names, read at each scrape, so the metrics and
    ModelStatistics carry the same numbers. They keep Triton's names exactly: prometheus_client would
    add `_total` to a counter, so these are exposed untyped (their values only ever grow)."""

    def __init__(self, statistics: Statistics) -> None:
        self.statistics = statistics

    def collect(self) -> list[Metric]:
        families = []
        for name, documentation, value in _TRITON:
            family = Metric(name, documentation, "unknown")
            for model, version, stats in self.statistics.of():
                family.add_sample(name, {"model": model, "version": version}, float(value(stats)))
            families.append(family)
        return families
