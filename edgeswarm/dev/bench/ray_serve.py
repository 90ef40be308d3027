"""The peer side by side: one ONNX model served by Ray Serve with N replicas, under a closed-loop load.

    .venv-ray/bin/python bench/ray_serve.py MODEL.onnx INPUTS.npz [--replicas 2] [--in-flight 4] [--seconds 6]

Run by `edgeswarm bench` in a Python that has `ray[serve]` (an optional benchmark extra, never a
dependency of edgeswarm: `python -m venv .venv-ray && .venv-ray/bin/pip install 'ray[serve]'
onnxruntime numpy`). Each replica holds one ONNX Runtime session with one thread, as an edgeswarm
worker does; requests carry the inputs as an .npz body over Ray Serve's HTTP proxy. Prints one JSON
line: requests/s, p50 and p99 latency in ms.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import threading
import time

import numpy as np
import onnxruntime as ort
from ray import serve
from starlette.requests import Request
from starlette.responses import Response


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@serve.deployment
class Model:
    def __init__(self, path: str) -> None:
        self.session = session(path)

    async def __call__(self, request: Request) -> Response:
        with np.load(io.BytesIO(await request.body())) as npz:
            feeds = {name: npz[name] for name in npz.files}
        names = [o.name for o in self.session.get_outputs()]
        out = io.BytesIO()
        np.savez(out, **dict(zip(names, self.session.run(names, feeds), strict=True)))
        return Response(out.getvalue(), media_type="application/octet-stream")


def load(port: int, body: bytes, in_flight: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def lane() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < stop:
            start = time.perf_counter()
            connection.request("POST", "/", body=body)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"Ray Serve answered {response.status}")
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
        connection.close()

    lanes = [threading.Thread(target=lane) for _ in range(in_flight)]
    begin = time.perf_counter()
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    return len(latencies) / (time.perf_counter() - begin), latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with open(args.inputs, "rb") as f:
        body = f.read()
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(
        Model.options(  # type: ignore[attr-defined]
            num_replicas=args.replicas, ray_actor_options={"num_cpus": 0}
        ).bind(args.model),
        route_prefix="/",
    )
    load(args.port, body, args.in_flight, 2.0)  # warm-up
    rps, latencies = load(args.port, body, args.in_flight, args.seconds)
    serve.shutdown()
    print(json.dumps({
        "replicas": args.replicas, "in_flight": args.in_flight, "rps": rps,
        "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
        "ray": __import__("ray").__version__,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
