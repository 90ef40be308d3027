"""Timing a gRPC link with pings: the coordinator to each worker, and a worker to a peer. Both ends
must answer the Worker service's Ping."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

PING_BYTES = 1024 * 1024
# Worker to worker: every pair of a fleet is timed, so a smaller payload.
PEER_PING_BYTES = 256 * 1024
MAX_PING_BYTES = 4 * 1024 * 1024


async def probe(
    ping: Callable[[bytes], Awaitable[object]], payload_bytes: int = PING_BYTES
) -> tuple[float, float]:
    """(round trip in seconds: the least of three empty pings, bandwidth in bytes/s: `payload_bytes`
    sent, the better of two, less the round trip)."""

    async def timed(payload: bytes) -> float:
        start = time.perf_counter()
        await ping(payload)
        return time.perf_counter() - start

    rtt = min([await timed(b"") for _ in range(3)])
    payload = bytes(payload_bytes)
    transfer = min([await timed(payload) for _ in range(2)])
    return rtt, payload_bytes / max(transfer - rtt, 1e-6)
