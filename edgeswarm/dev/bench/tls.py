"""What mutual TLS costs: the same requests through a plaintext local fleet and a secure one, in one run.

Two local fleets of 2 workers (one ORT thread each), one started `--insecure`, one secure (fleet CA,
workers joined with tokens, a bearer token on every client call), both up at once and measured one
after the other, plaintext first, while the other idles. On each, an identity chain (stages that
cost nothing but their calls) is deployed as one replica and as a 2-stage pipeline, and requests of
8 KiB, 400 KiB and 4 MiB are sent one at a time. Per request: p50 and p90 latency through the
coordinator; per hop: the pipeline's p50 minus the replica's (one more worker-to-worker hop). Every
output is checked against its input. Used by `bench/tls_cost.py`, `edgeswarm bench` and
`bench/chaos.py`.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.graph.trivial import identity_chain

SIZES = {"8 KiB": 8 * 1024, "400 KiB": 400 * 1024, "4 MiB": 4 * 1024 * 1024}
LAYOUTS = {"replica": {"mode": "replicas", "replicas": 1}, "pipeline": {"mode": "pipeline", "stages": 2}}


@dataclass(frozen=True)
class Latency:
    """One request size through one layout, plaintext and TLS, in ms."""

    plaintext_p50_ms: float
    tls_p50_ms: float
    plaintext_p90_ms: float
    tls_p90_ms: float
    ratio: float  # TLS p50 / plaintext p50


@dataclass(frozen=True)
class TlsCost:
    """One request size: per request through each layout, and what one more hop costs."""

    size: str
    bytes: int
    requests: int
    layouts: dict[str, Latency]  # "replica", "pipeline"
    hop_plaintext_ms: float  # pipeline p50 - replica p50, plaintext
    hop_tls_ms: float  # the same, TLS
    tls_per_hop_ms: float  # hop_tls_ms - hop_plaintext_ms: what TLS adds to one worker-to-worker hop
    tls_per_request_ms: float  # replica TLS p50 - plaintext p50: what TLS adds to one request

    @property
    def ratio(self) -> float:
        """TLS / plaintext p50 of one request through one replica."""
        return self.layouts["replica"].ratio


def _p(samples: list[float], q: int) -> float:
    return 1000 * statistics.quantiles(samples, n=100)[q - 1]


def _models(folder: Path) -> dict[str, Path]:
    models = {}
    for label, size in SIZES.items():
        models[label] = folder / f"identity-{size}.onnx"
        onnx.save(identity_chain(size // 4, stages=2), str(models[label]))
    return models


def measure(
    fleet: LocalFleet, models: dict[str, Path], requests: int, warm_up: int = 5
) -> dict[tuple[str, str], list[float]]:
    """Seconds of each of `requests` requests per (size label, layout) on `fleet`, after `warm_up`."""
    seconds: dict[tuple[str, str], list[float]] = {}
    with fleet.client() as client:
        for label, path in models.items():
            x = np.random.default_rng(0).standard_normal(SIZES[label] // 4, dtype=np.float32)
            for layout, shape in LAYOUTS.items():
                name = f"{label.replace(' ', '')}-{layout}"
                client.deploy(path, name, timeout=120, **shape)  # type: ignore[arg-type]
                for _ in range(warm_up):
                    client.infer(name, {"t0": x}, timeout=30)
                samples = []
                for _ in range(requests):
                    start = time.perf_counter()
                    got = client.infer(name, {"t0": x}, timeout=30)
                    samples.append(time.perf_counter() - start)
                    if not np.array_equal(next(iter(got.values())), x):
                        raise AssertionError(f"{name}: the identity chain changed its input")
                seconds[(label, layout)] = samples
    return seconds


def tls_cost(folder: Path, requests: int = 200, warm_up: int = 5) -> list[TlsCost]:
    """Measures a plaintext fleet, then a secure one, under `folder`; one row per request size."""
    folder.mkdir(parents=True, exist_ok=True)
    models = _models(folder)
    fleets = [LocalFleet(folder / f"fleet-{s}", workers=2, threads=1, secure=s) for s in (False, True)]
    try:  # both up at once, to start and stop sooner; measured one after the other
        for fleet in fleets:
            fleet.start()
        for fleet in fleets:
            fleet.wait_ready(timeout=60)
        results = {fleet.secure: measure(fleet, models, requests, warm_up) for fleet in fleets}
    finally:
        with ThreadPoolExecutor(len(fleets)) as pool:
            list(pool.map(LocalFleet.stop, fleets))
    rows = []
    for label, size in SIZES.items():
        layouts = {}
        for layout in LAYOUTS:
            plain, tls = results[False][(label, layout)], results[True][(label, layout)]
            layouts[layout] = Latency(
                _p(plain, 50), _p(tls, 50), _p(plain, 90), _p(tls, 90), _p(tls, 50) / _p(plain, 50)
            )
        hops = [layouts["pipeline"].plaintext_p50_ms - layouts["replica"].plaintext_p50_ms,
                layouts["pipeline"].tls_p50_ms - layouts["replica"].tls_p50_ms]  # fmt: skip
        extra = layouts["replica"].tls_p50_ms - layouts["replica"].plaintext_p50_ms
        rows.append(TlsCost(label, size, requests, layouts, hops[0], hops[1], hops[1] - hops[0], extra))
    return rows


def table(rows: list[TlsCost]) -> str:
    """The rows as two markdown tables: per request and layout, then per hop."""
    out = [
        f"{rows[0].requests} requests each, one at a time, 2 local workers (1 ORT thread each)",
        "",
        "| request | layout | plaintext p50 ms | TLS p50 ms | TLS / plaintext | plaintext p90 | TLS p90 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for layout, f in row.layouts.items():
            p50s = f"{f.plaintext_p50_ms:.2f} | {f.tls_p50_ms:.2f} | {f.ratio:.2f}x"
            out.append(f"| {row.size} | {layout} | {p50s} | {f.plaintext_p90_ms:.2f} | {f.tls_p90_ms:.2f} |")
    out += ["", "| request | one more hop, plaintext ms | one more hop, TLS ms | TLS costs per hop ms |",
            "|---|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        out.append(f"| {r.size} | {r.hop_plaintext_ms:.2f} | {r.hop_tls_ms:.2f} | {r.tls_per_hop_ms:.2f} |")
    return "\n".join(out)
