"""int8 and int4 against fp32: bytes, latency of one ONNX Runtime session and of a 3-stage pipeline,
and how close the outputs stay to the float model's.

    python bench/quantization.py [--requests 40]

For the built-in encoder and the zoo decoder: each variant is written as `edgeswarm quantize` writes
it, timed in one local session (one thread, the workers' options), then deployed with `--quantize`
as a 3-stage pipeline on a local fleet of 3 workers (one ORT thread each) and timed through the
coordinator, batch 1, requests one at a time. Every swarm output is checked against the local
session on the same file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import reference_session
from edgeswarm.graph.quantize import quantize
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.plans import Quantization

MODELS = {
    "built-in encoder": zoo.builtin_model,
    "zoo decoder": lambda: zoo.decoder(layers=6, d_model=256, heads=8, d_ff=1024, seq=16),
}


def p50(seconds: list[float]) -> float:
    return 1000 * statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, LocalFleet(Path(tmp) / "fleet", workers=3) as fleet:
        fleet.wait_ready()
        with Client(fleet.coordinator_address) as client:
            for label, build in MODELS.items():
                model = build()
                source = Path(tmp) / "model.onnx"
                onnx.save(model, str(source))
                inputs = sample_inputs(model, batch=1, seed=1)
                float_out: np.ndarray | None = None
                for method in (None, Quantization.INT8, Quantization.INT4):
                    path = source if method is None else Path(tmp) / f"model.{method}.onnx"
                    if method is not None:
                        onnx.save(quantize(model, method), str(path))
                    session = reference_session(path)
                    names = [o.name for o in session.get_outputs()]
                    local = []
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        want = session.run(names, inputs)
                        local.append(time.perf_counter() - start)
                    client.deploy(source, "q", mode="pipeline", stages=3, quantize=method or "", timeout=300)
                    swarm, exact = [], 0
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        got = client.infer("q", inputs, timeout=60)
                        swarm.append(time.perf_counter() - start)
                        exact += all(np.array_equal(got[n], w) for n, w in zip(names, want, strict=True))
                    client.undeploy("q")
                    out = want[0].ravel().astype(np.float64)
                    float_out = out if float_out is None else float_out
                    cosine = float(out @ float_out / (np.linalg.norm(out) * np.linalg.norm(float_out)))
                    rows.append(
                        f"| {label} | {method or 'fp32'} | {path.stat().st_size / 1e6:.1f} "
                        f"| {path.stat().st_size / source.stat().st_size:.3f}x | {p50(local):.2f} "
                        f"| {p50(swarm):.2f} | {cosine:.5f} | {float(np.abs(out - float_out).max()):.4f} "
                        f"| {exact}/{args.requests} |"
                    )
    print("| model | weights | MB | vs fp32 | one session p50 ms | 3-stage pipeline p50 ms "
          "| cosine to fp32 | max abs diff | bit-exact |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
