"""What gRPC itself costs a hop: an echo of the same bytes through threaded gRPC and through grpc.aio.

    python bench/grpc_echo.py [--requests 40]

Each server answers a request with its own bytes: the threaded server in this process with a
blocking client (what `edgeswarm bench` uses as the raw bound of a hop); a grpc.aio server with a
grpc.aio client on one event loop of this process; and a grpc.aio server in a process of its own
(`edgeswarm.dev.bench.barerelay`, as a worker is) with a blocking client. All with edgeswarm's own channel and
server options. Prints the p50 of each for 8 KiB, 400 KiB and 4 MiB and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent import futures

import grpc
import numpy as np

from edgeswarm.channels import channel_options, server_options
from edgeswarm.dev.bench import barerelay
from edgeswarm.dev.bench.harness import HOP_BYTES, BareChain, timed

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


def threaded(payloads: list[bytes], count: int) -> list[float]:
    """p50 ms of each payload echoed through a threaded server and a blocking client."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=server_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options()) as channel:
            call = channel.unary_unary(METHOD)
            return [float(np.median(timed(lambda: call(p), count))) for p in payloads]  # noqa: B023
    finally:
        server.stop(None)


async def asynchronous(payloads: list[bytes], count: int) -> list[float]:
    """p50 ms of each payload echoed through a grpc.aio server and client on this event loop."""

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    medians = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options()) as channel:
            call = channel.unary_unary(METHOD)
            for payload in payloads:
                samples = []
                for i in range(count + 3):
                    start = time.perf_counter()
                    await call(payload)
                    if i >= 3:  # the first calls warm the connection up
                        samples.append((time.perf_counter() - start) * 1000)
                medians.append(float(np.median(samples)))
    finally:
        await server.stop(None)
    return medians


def own_process(payloads: list[bytes], count: int) -> list[float]:
    """p50 ms of each payload echoed by a grpc.aio server in another process, to a blocking client."""
    with (
        BareChain(1, pinned_from=1) as server,  # one echo, left unpinned
        grpc.insecure_channel(server.address, options=channel_options()) as channel,
    ):
        call = channel.unary_unary(barerelay.METHOD)
        return [float(np.median(timed(lambda: call(p), count))) for p in payloads]  # noqa: B023


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    payloads = [rng.bytes(size) for size in HOP_BYTES]
    sync_ms = threaded(payloads, args.requests)
    aio_ms = asyncio.run(asynchronous(payloads, args.requests))
    apart_ms = own_process(payloads, args.requests)
    print(
        f"{'bytes':>9} {'threaded p50 ms':>16} {'grpc.aio p50 ms':>16} {'aio / threaded':>15} "
        f"{'aio server in own process p50 ms':>33} {'/ threaded':>11}"
    )
    for size, s, a, o in zip(HOP_BYTES, sync_ms, aio_ms, apart_ms, strict=True):
        print(f"{size:>9} {s:16.3f} {a:16.3f} {a / s:14.2f}x {o:33.3f} {o / s:10.2f}x")


if __name__ == "__main__":
    main()
