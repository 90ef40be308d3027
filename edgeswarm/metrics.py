"""Prometheus metrics of a coordinator or worker process, served on /metrics when asked for."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RPCS = Counter("edgeswarm_rpcs_total", "gRPC calls served, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "edgeswarm_rpc_seconds",
    "Time to serve a gRPC call, by method",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ROUTE_FAILURES = Counter(
    "edgeswarm_route_failures_total", "Routes that failed and were retried on another, by model", ["model"]
)
ROUTED = Counter(
    "edgeswarm_routed_requests_total",
    "Attempts the coordinator routed, by model and the worker of the route's first hop",
    ["model", "worker"],
)
WORKERS = Gauge("edgeswarm_workers", "Workers the coordinator knows, by state", ["state"])
STAGE_SECONDS = Histogram(
    "edgeswarm_stage_seconds",
    "ONNX Runtime time of one stage run, by stage digest prefix",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

TENSOR_BYTES = Counter(
    "edgeswarm_coordinator_tensor_bytes_total",
    "Tensor bytes through the coordinator: request inputs in, final outputs out (activations between "
    "stages go worker to worker and never count here)",
    ["direction"],
)
SESSION_HOP_BYTES = Counter(
    "edgeswarm_session_hop_bytes_total",
    "Tensor bytes a worker sent on to the next stage for generation steps (the new tokens' hidden "
    "states; a session's state never crosses)",
    ["model"],
)
SESSION_HOP_STEPS = Counter(
    "edgeswarm_session_hop_steps_total", "Generation steps a worker sent on to the next stage", ["model"]
)
BATCHES = Histogram(
    "edgeswarm_batch_requests",
    "Requests run together in one ONNX Runtime call by dynamic batching",
    buckets=(2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)


def serve_metrics(host: str, port: int) -> None:
    """Serves /metrics on HOST:PORT from a thread."""
    start_http_server(port, addr=host)
    log.info("metrics_serving address=%s:%d", host, port)


MODEL_REQUEST_SECONDS = Histogram(
    "edgeswarm_model_request_seconds",
    "End-to-end time of a successful inference request through the coordinator, by model",
    ["model"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WORKER_IN_FLIGHT = Gauge("edgeswarm_worker_in_flight", "Requests running on this worker", ["worker"])
WORKER_GFLOPS = Gauge(
    "edgeswarm_worker_calibration_gflops", "This worker's calibration figure (GFLOP/s)", ["worker"]
)
LINK_RTT = Gauge(
    "edgeswarm_link_rtt_seconds", "Round trip of a link as last timed for planning", ["source", "target"]
)
LINK_BANDWIDTH = Gauge(
    "edgeswarm_link_bandwidth_bytes",
    "Bandwidth (bytes/s) of a link as last timed for planning",
    ["source", "target"],
)
