"""Where the time of one request goes: local ORT vs. a worker called directly vs. through the coordinator.

    python bench/overhead.py [--requests 60]

Starts a coordinator and one worker on 127.0.0.1, deploys the built-in encoder as one replica,
and prints p50/p90 latency of each path and its ratio to one local ONNX Runtime session.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.dev.bench.harness import timed
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.worker.runtime import session_options


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument(
        "--small", action="store_true", help="use a ~1 ms encoder instead of the built-in one"
    )
    args = parser.parse_args()
    model = zoo.transformer_encoder(layers=2, d_model=64, seq=32) if args.small else zoo.builtin_model()
    inputs = sample_inputs(model)
    with tempfile.TemporaryDirectory() as tmp, LocalFleet(Path(tmp), workers=1) as fleet:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        fleet.wait_ready()
        session = ort.InferenceSession(str(path), session_options(1, "basic"))
        rows = {"one ORT session, in process": timed(lambda: session.run(None, inputs), args.requests)}
        with Client(fleet.coordinator_address) as client:
            info = client.deploy(path, "m", mode="replicas", replicas=1)
            stage = info.stages[0]
            hop = worker_pb2.Hop(stage=stage.sha256, carry=["hidden"])
            request = worker_pb2.StageRequest(
                request_id="b", model="m", tensors=codec.encode_all(inputs), route=[hop]
            )
            address = next(iter(fleet.worker_addresses.values()))
            with grpc.insecure_channel(address) as channel:
                stub = worker_pb2_grpc.WorkerStub(channel)
                rows["worker RunStage, direct"] = timed(lambda: stub.RunStage(request), args.requests)
            rows["SDK -> coordinator -> worker"] = timed(lambda: client.infer("m", inputs), args.requests)
    base = float(np.median(rows["one ORT session, in process"]))
    print(f"{'path':34} {'p50 ms':>8} {'p90 ms':>8} {'vs ORT':>7}")
    for label, samples in rows.items():
        p50, p90 = np.percentile(samples, [50, 90])
        print(f"{label:34} {p50:8.2f} {p90:8.2f} {p50 / base:6.2f}x")


if __name__ == "__main__":
    main()
