"""`edgeswarm bench`: the swarm's overheads and throughput against their limits, measured in one run.

Every figure is a ratio to a bound measured in the same run on the same machine: one ONNX Runtime
session in this process, a raw gRPC round trip of the same bytes, Σ 1/T(worker) for replicas and
1/max(stage time) for a pipeline. A local fleet (coordinator and 3 workers, one ORT thread each)
runs on 127.0.0.1; the workers serving a measurement are pinned one per core. Then what TLS costs
(edgeswarm/dev/bench/tls.py): the same requests through a plaintext and a secure fleet of 2 workers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import onnxruntime as ort

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
from edgeswarm.channels import channel_options, open_channel
from edgeswarm.client import AsyncClient, Client
from edgeswarm.dev import perf_analyzer, zoo
from edgeswarm.dev.bench import barerelay
from edgeswarm.dev.bench.generation import generation
from edgeswarm.dev.bench.harness import (
    HOP_BYTES,
    HOP_STAGES,
    BareChain,
    Echo,
    Settings,
    closed_loop,
    cpu_seconds,
    deploy,
    percentile,
    save,
    timed,
)
from edgeswarm.dev.bench.tls import tls_cost
from edgeswarm.dev.localfleet import LocalFleet, free_port
from edgeswarm.graph.partition import Graph, balanced_cuts, split
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.worker.runtime import session_options


def latency(fleet: LocalFleet, folder: Path, settings: Settings) -> list[dict[str, Any]]:
    """Batch-1 p50 of replicas and 2-/3-stage pipelines against one local ORT session."""
    rows = []
    layouts = {
        "2 replicas": {"mode": "replicas", "replicas": 2},
        "2-stage pipeline": {"mode": "pipeline", "stages": 2},
        "3-stage pipeline": {"mode": "pipeline", "stages": 3},
    }
    for label, shape in settings.models.items():
        model = zoo.transformer_encoder(**shape)
        path = save(model, folder, f"latency-{shape['layers']}-{shape['d_model']}")
        inputs = sample_inputs(model)
        session = ort.InferenceSession(str(path), session_options(1, "basic"))
        ort_ms = percentile(timed(lambda: session.run(None, inputs), settings.requests), 50)  # noqa: B023
        row: dict[str, Any] = {"model": label, "ort_p50_ms": ort_ms, "layouts": {}}
        with Client(fleet.coordinator_address) as client:
            for layout, kwargs in layouts.items():
                deploy(fleet, client, path, "lat", **kwargs)
                samples = timed(lambda: client.infer("lat", inputs, timeout=60), settings.requests)  # noqa: B023
                p50 = percentile(samples, 50)
                row["layouts"][layout] = {"p50_ms": p50, "vs_ort": p50 / ort_ms}
        rows.append(row)
    return rows


def per_hop(fleet: LocalFleet, folder: Path, settings: Settings) -> list[dict[str, Any]]:
    """(p50 of K trivial stages - p50 of one) / (K - 1), next to a raw gRPC round trip of the bytes
    and to the same difference through chains of bare grpc.aio relays (the floor of a Python hop)."""
    rows = []
    with (
        Echo() as echo,
        BareChain(1) as bare_one,
        BareChain(HOP_STAGES) as bare_many,
        grpc.insecure_channel(bare_one.address, options=channel_options()) as one_channel,
        grpc.insecure_channel(bare_many.address, options=channel_options()) as many_channel,
        Client(fleet.coordinator_address) as client,
    ):
        for size in HOP_BYTES:
            floats = size // 4
            path = save(zoo.identity_chain(floats, HOP_STAGES), folder, f"hops-{size}")
            inputs = {"t0": np.random.default_rng(0).standard_normal(floats).astype(np.float32)}
            count = max(settings.requests // (4 if size > 1_000_000 else 1), 10)
            deploy(fleet, client, path, "hops", mode="pipeline", stages=1)
            one = percentile(timed(lambda: client.infer("hops", inputs, timeout=60), count), 50)  # noqa: B023
            deploy(fleet, client, path, "hops", mode="pipeline", stages=HOP_STAGES)
            many = percentile(timed(lambda: client.infer("hops", inputs, timeout=60), count), 50)  # noqa: B023
            payload = inputs["t0"].tobytes()
            raw = percentile(timed(lambda: echo.call(payload), count), 50)  # noqa: B023
            bare = [
                percentile(timed(lambda: call(payload, timeout=60), count), 50)  # noqa: B023
                for call in (c.unary_unary(barerelay.METHOD) for c in (one_channel, many_channel))
            ]
            hop = (many - one) / (HOP_STAGES - 1)
            bare_hop = (bare[1] - bare[0]) / (HOP_STAGES - 1)
            rows.append(
                {"bytes": size, "per_hop_ms": hop, "raw_grpc_round_trip_ms": raw, "vs_raw": hop / raw,
                 "bare_aio_hop_ms": bare_hop, "vs_bare_aio_hop": hop / bare_hop if bare_hop > 0 else math.nan}
            )  # fmt: skip
    return rows


def _stage_ms(
    model: onnx.ModelProto, cuts: list[int], inputs: dict[str, np.ndarray], count: int
) -> list[float]:
    """p50 of each stage of `model` cut at `cuts`, each in one ORT session on one thread."""
    env = dict(inputs)
    times = []
    for part in split(model, cuts):
        session = ort.InferenceSession(part.model, session_options(1, "basic"))
        feeds = {n: env[n] for n in part.inputs}
        env.update(zip(part.outputs, session.run(list(part.outputs), feeds), strict=True))
        times.append(percentile(timed(lambda: session.run(None, feeds), count), 50))  # noqa: B023
    return times


def throughput(fleet: LocalFleet, folder: Path, settings: Settings) -> list[dict[str, Any]]:
    """Requests/s under concurrency against the bounds: 2 replicas (Σ 1/T) and a 2-stage pipeline
    (1/max stage), each worker on a core of its own, 4 requests in flight (twice the stages)."""
    label, shape = next(iter(settings.models.items()))
    model = zoo.transformer_encoder(**shape)
    path = save(model, folder, "throughput")
    inputs = sample_inputs(model)
    whole = _stage_ms(model, [], inputs, settings.requests)[0]
    rows = []
    with Client(fleet.coordinator_address) as client:
        for layout, kwargs in (
            ("2 replicas", {"mode": "replicas", "replicas": 2}),
            ("2-stage pipeline", {"mode": "pipeline", "stages": 2}),
            (
                "2 replicas, batching (8, 2 ms)",
                {"mode": "replicas", "replicas": 2, "batch_max": 8, "batch_delay_ms": 2},
            ),
        ):
            used = deploy(fleet, client, path, "tp", **kwargs)
            if kwargs["mode"] == "replicas":
                bound = len(used) * 1000 / whole
            else:  # the deployer cuts a fixed-shape pipeline with balanced_cuts
                bound = 1000 / max(_stage_ms(model, balanced_cuts(model, 2), inputs, settings.requests))

            async def run() -> tuple[float, list[float], float]:
                async with AsyncClient(fleet.coordinator_address) as aclient:
                    cpu: list[float] = []
                    rps, latencies = await closed_loop(
                        lambda: aclient.infer("tp", inputs, timeout=60),
                        4,
                        settings.seconds,
                        lambda: cpu.append(cpu_seconds(fleet)),
                    )
                    return rps, latencies, 1000 * (cpu_seconds(fleet) - cpu[0]) / max(len(latencies), 1)

            rps, latencies, cpu_ms = asyncio.run(run())
            # What this machine's cores could serve at that CPU cost per request, counting the
            # coordinator's and the client's share.
            cpu_bound = len(os.sched_getaffinity(0)) * 1000 / cpu_ms
            rows.append(
                {"model": label, "layout": layout, "in_flight": 4, "rps": rps, "bound_rps": bound,
                 "vs_bound": rps / bound, "p50_ms": percentile(latencies, 50),
                 "p99_ms": percentile(latencies, 99),
                 "cpu_ms_per_request": cpu_ms, "cpu_bound_rps": cpu_bound, "vs_cpu_bound": rps / cpu_bound}
            )  # fmt: skip
    return rows


def coordinator_capacity(fleet: LocalFleet, folder: Path, settings: Settings) -> dict[str, Any]:
    """A tiny model through the coordinator vs. the same worker called directly."""
    model = zoo.mlp(layers=2, width=16, in_features=16, out_features=4)
    path = save(model, folder, "tiny")
    inputs = sample_inputs(model)
    with Client(fleet.coordinator_address) as client:
        deploy(fleet, client, path, "tiny", mode="replicas", replicas=1)
        status = client.status()
    stage = next(m for m in status.models if m.name == "tiny").stages[0]
    address = next(w.address for w in status.workers if w.id == stage.workers[0])
    tensors = codec.encode_all(inputs)
    outputs = [o.name for o in model.graph.output]
    request = worker_pb2.StageRequest(
        request_id=uuid.uuid4().hex, model="tiny", tensors=tensors,
        route=[worker_pb2.Hop(stage=stage.sha256, addresses=[address], carry=outputs)],
    )  # fmt: skip

    async def figures_of(call: Callable[[], Any]) -> dict[str, float]:
        _, sequential = await closed_loop(call, 1, settings.seconds / 2)
        rps, _ = await closed_loop(call, 16, settings.seconds)
        return {"rps": rps, "p50_ms": percentile(sequential, 50), "p99_ms": percentile(sequential, 99)}

    async def ours() -> dict[str, Any]:
        channel = open_channel(address)
        stub = worker_pb2_grpc.WorkerStub(channel)
        async with AsyncClient(fleet.coordinator_address) as aclient:
            direct = await figures_of(lambda: stub.RunStage(request, timeout=30))
            via = await figures_of(lambda: aclient.infer("tiny", inputs, timeout=30))
        await channel.close()
        return {"direct": direct, "via_coordinator": via}

    async def bare(chain: BareChain) -> dict[str, float]:
        channel = open_channel(chain.address)
        call, payload = channel.unary_unary(barerelay.METHOD), request.SerializeToString()
        figures = await figures_of(lambda: call(payload, timeout=30))
        await channel.close()
        return figures

    figures: dict[str, Any] = asyncio.run(ours())
    with BareChain(1) as echo:  # pinned as the worker is
        figures["bare_echo"] = asyncio.run(bare(echo))
    with BareChain(2, pinned_from=1) as relay:  # the relay unpinned, as the coordinator is
        figures["bare_relay"] = asyncio.run(bare(relay))
    via, direct = figures["via_coordinator"], figures["direct"]
    figures["added_p50_ms"] = via["p50_ms"] - direct["p50_ms"]
    figures["added_p99_ms"] = via["p99_ms"] - direct["p99_ms"]
    figures["bare_added_p50_ms"] = figures["bare_relay"]["p50_ms"] - figures["bare_echo"]["p50_ms"]
    figures["vs_bare_relay"] = via["rps"] / figures["bare_relay"]["rps"]
    return figures


def _coordinator_bytes(metrics: str) -> float:
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode()
    prefix = "edgeswarm_coordinator_tensor_bytes_total"
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def data_path(fleet: LocalFleet, folder: Path, settings: Settings, metrics: str) -> dict[str, Any]:
    """Bytes the coordinator handles per request of a 3-stage pipeline, against the activation bytes
    that cross its stage boundaries worker to worker."""
    shape = next(iter(settings.models.values()))
    model = zoo.transformer_encoder(**shape)
    path = save(model, folder, "data-path")
    inputs = sample_inputs(model)
    with Client(fleet.coordinator_address) as client:
        deploy(fleet, client, path, "dp", mode="pipeline", stages=3)
        stages = next(m for m in client.status().models if m.name == "dp").stages
        before = _coordinator_bytes(metrics)
        for _ in range(settings.requests):
            client.infer("dp", inputs, timeout=60)
        through = (_coordinator_bytes(metrics) - before) / settings.requests
    graph = Graph(model, {name: value.shape for name, value in inputs.items()})
    between = sum(graph.tensor_bytes(name) for stage in stages[1:] for name in stage.inputs)
    return {"coordinator_bytes_per_request": through, "activation_bytes_between_stages": between,
            "model": next(iter(settings.models))}  # fmt: skip


def perf_analyzer_check(
    fleet: LocalFleet, folder: Path, settings: Settings, ours: dict[str, Any]
) -> dict[str, Any]:
    """Triton's perf_analyzer on the same model, layout (2 replicas) and concurrency (4) as `ours`,
    where its binary runs: the two load generators' figures side by side."""
    reason = perf_analyzer.unavailable()
    if reason is not None:
        return {"skipped": reason}
    shape = next(iter(settings.models.values()))
    path = save(zoo.transformer_encoder(**shape), folder, "perf-analyzer")
    with Client(fleet.coordinator_address) as client:
        deploy(fleet, client, path, "pa", mode="replicas", replicas=2)
    interval_ms = round(1000 * settings.seconds / 2)
    figures, _ = perf_analyzer.run(fleet.coordinator_address, "pa", concurrency=4, interval_ms=interval_ms)
    theirs = {"rps": figures.inferences_per_s, "p50_ms": figures.p50_ms, "p99_ms": figures.p99_ms}
    return {
        "in_flight": 4,
        "perf_analyzer": theirs,
        "edgeswarm": {k: ours[k] for k in ("rps", "p50_ms", "p99_ms")},
    }


# Runs under a Python that has Ray, as a script: it imports nothing of edgeswarm.
RAY_SCRIPT = Path(__file__).with_name("ray_serve.py")


def _ray_python() -> Path | None:
    """A Python with `ray[serve]`: $EDGESWARM_BENCH_RAY_PYTHON, or .venv-ray/ in the current directory."""
    given = os.environ.get("EDGESWARM_BENCH_RAY_PYTHON")
    candidate = Path(given) if given else Path.cwd() / ".venv-ray/bin/python"
    return candidate if candidate.exists() else None


def peer(folder: Path, settings: Settings, ours: dict[str, Any]) -> dict[str, Any]:
    """The same model under Ray Serve, 2 replicas, the same 4 requests in flight (ray_serve.py beside
    this module, run in a Python that has Ray: an optional extra, never an edgeswarm dependency)."""
    python, script = _ray_python(), RAY_SCRIPT
    if settings.quick:
        return {"skipped": "not in --quick"}
    if python is None or not script.exists():
        return {"skipped": "no Python with ray[serve] (.venv-ray/ or EDGESWARM_BENCH_RAY_PYTHON)"}
    shape = next(iter(settings.models.values()))
    model = zoo.transformer_encoder(**shape)
    path = save(model, folder, "ray")
    inputs = folder / "ray-inputs.npz"
    np.savez(inputs, **sample_inputs(model))  # type: ignore[arg-type]
    done = subprocess.run(
        [str(python), str(script), str(path), str(inputs), "--replicas", "2", "--in-flight", "4",
         "--seconds", str(settings.seconds)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        return {"skipped": f"Ray Serve run failed: {done.stderr.strip().splitlines()[-1:]}"}
    ray = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"ray_serve": ray, "edgeswarm": {k: ours[k] for k in ("rps", "p50_ms", "p99_ms")}}


def run(settings: Settings, json_path: Path | None = None, chart_path: Path | None = None) -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0))
    results: dict[str, Any] = {
        "machine": {
            "cores": cores,
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "pinning": "each worker serving a measurement pinned to its own core (round robin over "
            f"{cores}); coordinator and client unpinned; 1 ORT thread per worker and locally",
        },
        "quick": settings.quick,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        metrics = f"127.0.0.1:{free_port()}"
        with LocalFleet(
            folder / "fleet", workers=3, threads=1, coordinator_args=("--metrics", metrics)
        ) as fleet:
            fleet.wait_ready()
            started = time.perf_counter()
            results["latency"] = latency(fleet, folder, settings)
            results["per_hop"] = per_hop(fleet, folder, settings)
            results["throughput"] = throughput(fleet, folder, settings)
            results["coordinator"] = coordinator_capacity(fleet, folder, settings)
            results["data_path"] = data_path(fleet, folder, settings, metrics)
            replicas = next(r for r in results["throughput"] if r["layout"] == "2 replicas")
            results["perf_analyzer"] = perf_analyzer_check(fleet, folder, settings, replicas)
            results["peer"] = peer(folder, settings, replicas)
        # Two fleets of its own, plaintext then secure, once the one above is gone; few requests in --quick.
        count, warm_up = (10, 2) if settings.quick else (settings.requests, 5)
        results["tls"] = [asdict(row) for row in tls_cost(folder / "tls", count, warm_up)]
        results["generation"] = {"skipped": "not in --quick"} if settings.quick else generation(folder)
        results["seconds"] = time.perf_counter() - started
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2))
    if chart_path is not None:
        from edgeswarm.dev.bench.report import chart

        chart(results, chart_path)
    return results
