"""`edgeswarm demo`: a coordinator and three workers on 127.0.0.1 serve the built-in encoder,
as three replicas and as a three-stage pipeline, and every answer is checked against one
local ONNX Runtime session on the whole model; then a built-in LLM generates on a three-stage
pipeline, its tokens checked against one session running the loop (edgeswarm/dev/demo_llm.py)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from edgeswarm.cli.tables import print_status
from edgeswarm.client import AsyncClient, Client
from edgeswarm.dev import zoo
from edgeswarm.dev.demo_llm import demo_generation, describe
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.worker.runtime import session_options

Inputs = dict[str, np.ndarray]
THREADS = 1
DISTINCT_INPUTS = 8
CONCURRENCY = 6


@dataclass
class Figures:
    label: str
    p50_ms: float
    p90_ms: float
    throughput: float
    exact: int
    total: int


def _percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000.0, q))


def _reference(
    path: Path, inputs: list[Inputs], requests: int, progress: Progress
) -> tuple[list[Inputs], Figures]:
    session = ort.InferenceSession(
        str(path), session_options(THREADS, "basic"), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    expected = [dict(zip(names, session.run(names, x), strict=True)) for x in inputs]
    task = progress.add_task("one ORT session", total=requests)
    samples = []
    for i in range(requests):
        start = time.perf_counter()
        session.run(names, inputs[i % len(inputs)])
        samples.append(time.perf_counter() - start)
        progress.advance(task)
    figures = Figures(
        "one ONNX Runtime session",
        _percentile(samples, 50),
        _percentile(samples, 90),
        1.0 / statistics.mean(samples),
        requests,
        requests,
    )
    return expected, figures


def _equal(got: Inputs, want: Inputs) -> bool:
    return got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


def _measure(
    address: str,
    credentials: Path | None,
    model: str,
    label: str,
    inputs: list[Inputs],
    expected: list[Inputs],
    requests: int,
    progress: Progress,
) -> Figures:
    task = progress.add_task(label, total=requests * 2)
    samples: list[float] = []
    exact = 0
    with Client(address, credentials=credentials) as client:
        for i in range(requests):
            start = time.perf_counter()
            got = client.infer(model, inputs[i % len(inputs)], timeout=30.0)
            samples.append(time.perf_counter() - start)
            exact += _equal(got, expected[i % len(inputs)])
            progress.advance(task)
    concurrent_exact, seconds = asyncio.run(
        _concurrent(address, credentials, model, inputs, expected, requests, lambda: progress.advance(task))
    )
    return Figures(
        label,
        _percentile(samples, 50),
        _percentile(samples, 90),
        requests / seconds,
        exact + concurrent_exact,
        requests * 2,
    )


async def _concurrent(
    address: str,
    credentials: Path | None,
    model: str,
    inputs: list[Inputs],
    expected: list[Inputs],
    requests: int,
    tick: Callable[[], None],
) -> tuple[int, float]:
    exact = 0
    todo = iter(range(requests))

    async def lane(client: AsyncClient) -> None:
        nonlocal exact
        for i in todo:
            got = await client.infer(model, inputs[i % len(inputs)], timeout=30.0)
            exact += _equal(got, expected[i % len(inputs)])
            tick()

    async with AsyncClient(address, credentials=credentials) as client:
        start = time.perf_counter()
        async with asyncio.TaskGroup() as lanes:
            for _ in range(CONCURRENCY):
                lanes.create_task(lane(client))
        return exact, time.perf_counter() - start


def _results(rows: list[Figures], baseline: Figures) -> Table:
    table = Table(title="built-in encoder, batch 1: latency sequential, throughput with 6 in flight")
    # A two-line header keeps it within 80 columns.
    for column in ("path", "p50 ms", "p90 ms", "vs ORT\np50", "req/s", "bit-exact"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for row in rows:
        table.add_row(
            row.label,
            f"{row.p50_ms:.2f}",
            f"{row.p90_ms:.2f}",
            f"{row.p50_ms / baseline.p50_ms:.2f}x",
            f"{row.throughput:.1f}",
            f"{row.exact}/{row.total}",
        )
    return table


def run_demo(requests: int = 40) -> int:
    console = Console()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeswarm-demo-") as tmp:
        workdir = Path(tmp)
        model = zoo.builtin_model()
        path = workdir / "encoder.onnx"
        onnx.save(model, str(path))
        inputs = [sample_inputs(model, batch=1, seed=i) for i in range(DISTINCT_INPUTS)]
        size_mb = path.stat().st_size / 1e6
        console.print(
            f"[bold]edgeswarm demo[/bold]: built-in transformer encoder, {size_mb:.1f} MB, "
            f"{len(model.graph.node)} nodes; 1 coordinator + 3 workers on 127.0.0.1, mutual TLS from a "
            "throwaway fleet CA"
        )
        with (
            LocalFleet(workdir / "fleet", workers=3, threads=THREADS, secure=True) as fleet,
            Progress(console=console) as bar,
        ):
            boot = bar.add_task("starting coordinator and 3 workers", total=None)
            fleet.wait_ready(timeout=60)
            bar.update(boot, total=1, completed=1)
            with fleet.client() as client:
                deploy = bar.add_task("deploying as 3 replicas and as a 3-stage pipeline", total=2)
                client.deploy(path, "encoder", mode="replicas", replicas=3, timeout=120)
                bar.advance(deploy)
                client.deploy(path, "encoder-pipeline", mode="pipeline", stages=3, timeout=120)
                bar.advance(deploy)
            expected, baseline = _reference(path, inputs, requests, bar)
            address, credentials = fleet.coordinator_address, fleet.credentials
            rows = [
                baseline,
                _measure(address, credentials, "encoder", "3 replicas", inputs, expected, requests, bar),
                _measure(
                    address,
                    credentials,
                    "encoder-pipeline",
                    "3-stage pipeline",
                    inputs,
                    expected,
                    requests,
                    bar,
                ),
            ]
            generated = demo_generation(fleet, workdir, console)
            report = fleet.status()
        print_status(report, console)
        console.print(_results(rows, baseline))
    console.print(describe(generated))
    exact = all(r.exact == r.total for r in rows) and generated.exact
    verdict = "[green]every output equals the local session bit for bit" if exact else "[red]OUTPUTS DIFFER"
    console.print(
        f"{verdict}[/]; ORT threads per worker and in the local session: {THREADS}; "
        f"finished in {time.perf_counter() - started:.1f}s"
    )
    return 0 if exact else 1
