"""What mutual TLS costs: the same requests through a plaintext fleet and a secure one, in one run.

    python bench/tls_cost.py [--requests 200]

Two local fleets of 2 workers (one ORT thread each), one started `--insecure`, one secure (fleet
CA, workers joined with tokens, a bearer token on every client call). On each, an identity chain
(stages that cost nothing but their calls) is deployed as one replica and as a 2-stage pipeline,
and requests of 8 KiB, 400 KiB and 4 MiB are sent one at a time. Per request: p50 and p90 latency
through the coordinator; per hop: the pipeline's p50 minus the replica's (one more worker-to-worker
hop). Every output is checked against its input.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.graph.trivial import identity_chain

SIZES = {"8 KiB": 8 * 1024, "400 KiB": 400 * 1024, "4 MiB": 4 * 1024 * 1024}


def measure(fleet: LocalFleet, models: dict[str, Path], requests: int) -> dict[tuple[str, str], list[float]]:
    seconds: dict[tuple[str, str], list[float]] = {}
    with fleet.client() as client:
        for label, path in models.items():
            for layout, shape in (("replica", {"mode": "replicas", "replicas": 1}),
                                  ("pipeline", {"mode": "pipeline", "stages": 2})):  # fmt: skip
                name = f"{label.replace(' ', '')}-{layout}"
                client.deploy(path, name, timeout=120, **shape)  # type: ignore[arg-type]
                x = np.random.default_rng(0).standard_normal(SIZES[label] // 4, dtype=np.float32)
                for _ in range(5):
                    client.infer(name, {"t0": x}, timeout=30)
                samples = []
                for _ in range(requests):
                    start = time.perf_counter()
                    got = client.infer(name, {"t0": x}, timeout=30)
                    samples.append(time.perf_counter() - start)
                    assert np.array_equal(next(iter(got.values())), x)
                seconds[(label, layout)] = samples
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeswarm-tls-bench-") as tmp:
        root = Path(tmp)
        models = {}
        for label, size in SIZES.items():
            models[label] = root / f"identity-{size}.onnx"
            onnx.save(identity_chain(size // 4, stages=2), str(models[label]))
        results = {}
        for secure in (False, True):
            with LocalFleet(root / f"fleet-{secure}", workers=2, threads=1, secure=secure) as fleet:
                fleet.wait_ready(timeout=60)
                results[secure] = measure(fleet, models, args.requests)

    def p(samples: list[float], q: int) -> float:
        return 1000 * statistics.quantiles(samples, n=100)[q - 1]

    print(f"{args.requests} requests each, one at a time, 2 local workers (1 ORT thread each)\n")
    print("| request | layout | plaintext p50 ms | TLS p50 ms | TLS / plaintext | plaintext p90 | TLS p90 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label in SIZES:
        for layout in ("replica", "pipeline"):
            plain, tls = results[False][(label, layout)], results[True][(label, layout)]
            ratio = p(tls, 50) / p(plain, 50)
            print(f"| {label} | {layout} | {p(plain, 50):.2f} | {p(tls, 50):.2f} | {ratio:.2f}x "
                  f"| {p(plain, 90):.2f} | {p(tls, 90):.2f} |")  # fmt: skip
    print("\n| request | one more hop, plaintext ms | one more hop, TLS ms | TLS costs per hop ms |")
    print("|---|---:|---:|---:|")
    for label in SIZES:
        hops = [
            p(results[s][(label, "pipeline")], 50) - p(results[s][(label, "replica")], 50)
            for s in (False, True)
        ]
        print(f"| {label} | {hops[0]:.2f} | {hops[1]:.2f} | {hops[1] - hops[0]:.2f} |")


if __name__ == "__main__":
    main()
