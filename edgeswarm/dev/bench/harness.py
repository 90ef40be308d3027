"""What the benchmark measures with: its settings and models, timing and percentiles, pinning workers to
cores, closed request loops, CPU seconds of the swarm, and chains of bare gRPC servers to compare with."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx

from edgeswarm.client import Client
from edgeswarm.dev.bench import barerelay
from edgeswarm.dev.localfleet import LocalFleet, free_port

MODELS = {
    "~5 ms encoder": {"layers": 4, "d_model": 256, "heads": 4, "d_ff": 1024, "seq": 64},
    "~50 ms encoder": {"layers": 6, "d_model": 512, "heads": 8, "d_ff": 2048, "seq": 128},
}
HOP_BYTES = (8 * 1024, 400 * 1024, 4 * 1024 * 1024)
HOP_STAGES = 3
WARM_UP_S = 1.0  # closed loops run this long (at most a quarter of their time) before counting


@dataclass(frozen=True)
class Settings:
    quick: bool = False

    @property
    def requests(self) -> int:
        return 15 if self.quick else 100

    @property
    def seconds(self) -> float:
        return 0.5 if self.quick else 6.0

    @property
    def models(self) -> dict[str, dict[str, int]]:
        return dict(list(MODELS.items())[:1]) if self.quick else MODELS


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) if samples else float("nan")


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Milliseconds of each of `count` calls, after 3 unmeasured ones."""
    for _ in range(3):
        call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def pin(fleet: LocalFleet, names: list[str]) -> str:
    """Pins the workers named, in order, one per core; returns how, for the table."""
    cores = sorted(os.sched_getaffinity(0))
    pinned = []
    for i, name in enumerate(names):
        core = cores[i % len(cores)]
        os.sched_setaffinity(fleet.workers[name].pid, {core})
        pinned.append(f"{name}->cpu{core}")
    return ", ".join(pinned)


def unpin(fleet: LocalFleet) -> None:
    cores = os.sched_getaffinity(0)
    for process in fleet.workers.values():
        os.sched_setaffinity(process.pid, cores)


def deploy(fleet: LocalFleet, client: Client, path: Path, name: str, **layout: Any) -> list[str]:
    """Deploys `name` alone on the fleet and pins its workers; returns their names in stage order."""
    for model in client.status().models:
        client.undeploy(model.name)
    info = client.deploy(path, name, timeout=300, **layout)
    names = {w.id: w.name for w in client.status().workers}
    used = [names[w] for s in info.stages for w in s.workers]
    unpin(fleet)
    pin(fleet, used)
    return used


async def closed_loop(
    call: Callable[[], Any], concurrency: int, seconds: float, counting: Callable[[], object] | None = None
) -> tuple[float, list[float]]:
    """Requests/s and latencies (ms) of `concurrency` lanes calling back to back for `seconds`, after
    an uncounted warm-up; `counting` is called as the counted part starts."""
    latencies: list[float] = []
    stop = time.perf_counter() + min(WARM_UP_S, seconds / 4)

    async def lane() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(lane() for _ in range(concurrency)))  # warm-up, not counted
    latencies.clear()
    if counting is not None:
        counting()
    stop = time.perf_counter() + seconds
    begin = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - begin), latencies


def cpu_seconds(fleet: LocalFleet) -> float:
    """CPU time (user + system) used so far by the fleet's processes and by this one (the client)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = sum(os.times()[:2])
    for process in [fleet.coordinator, *fleet.workers.values()]:
        if process is None:
            continue
        try:
            # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
            fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def save(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


class Echo:
    """A raw gRPC server answering each request with its own bytes: the bound for one hop."""

    def __enter__(self) -> Echo:
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request)}
        )
        limit = 64 * 1024 * 1024
        options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=options)
        self.server.add_generic_rpc_handlers((handler,))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
        self.call = self.channel.unary_unary("/bench.Echo/Echo")
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.server.stop(None)


class BareChain:
    """`length` bare grpc.aio servers (edgeswarm.dev.bench.barerelay), each relaying to the next, the last
    echoing: what the swarm's own path would cost with no logic of its own. Those from `pinned_from`
    on are pinned round robin over the cores, as the workers they stand for are."""

    def __init__(self, length: int, pinned_from: int = 0) -> None:
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in range(length)]
        self.pinned_from = pinned_from
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        return self.addresses[0]

    def __enter__(self) -> BareChain:
        cores = sorted(os.sched_getaffinity(0))
        try:
            for i, address in enumerate(self.addresses):
                onward = self.addresses[i + 1 : i + 2]
                command = [sys.executable, "-m", "edgeswarm.dev.bench.barerelay", "--listen", address]
                # Quiet: gRPC logs lines as the chain is killed; a failed start shows as the first
                # call below timing out.
                process = subprocess.Popen(
                    command + (["--next", *onward] if onward else []),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                self.processes.append(process)
                if i >= self.pinned_from:
                    os.sched_setaffinity(process.pid, {cores[(i - self.pinned_from) % len(cores)]})
            with grpc.insecure_channel(self.address) as channel:  # answers once the whole chain is up
                channel.unary_unary(barerelay.METHOD)(b"", timeout=60, wait_for_ready=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)
