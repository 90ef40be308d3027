"""Timing a gRPC link with pings: the coordinator to each worker, and a worker to a peer. Both ends
must answer the Worker service's Ping."""

from __future__ import annotations

import time
from typing import Any

from edgeswarm._proto.edgeswarm.v1 import worker_pb2

PING_BYTES = 1024 * 1024
# Worker to worker: every pair of a fleet is timed, so a smaller payload.
PEER_PING_BYTES = 256 * 1024
MAX_PING_BYTES = 4 * 1024 * 1024


async def probe(
    stub: Any, payload_bytes: int = PING_BYTES, timeout: float | None = 10.0
) -> tuple[float, float]:
    """Through `stub` (a Worker stub), (round trip in seconds: the least of three empty pings,
    bandwidth in bytes/s: `payload_bytes` sent, the better of two, less the round trip); each ping
    given `timeout`."""

    async def timed(payload: bytes) -> float:
        start = time.perf_counter()
        await stub.Ping(worker_pb2.PingRequest(payload=payload), timeout=timeout)
        return time.perf_counter() - start

    rtt = min([await timed(b"") for _ in range(3)])
    payload = bytes(payload_bytes)
    transfer = min([await timed(payload) for _ in range(2)])
    return rtt, payload_bytes / max(transfer - rtt, 1e-6)
