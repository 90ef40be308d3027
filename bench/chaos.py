"""The chaos run: steady load through a fleet in network namespaces while each fault is injected in turn.

    sudo python bench/chaos.py [--model builtin|small] [--lanes 2] [--hold 3] [--tls-requests 100]
                               [--json FILE]

Mosquitto, the coordinator and two workers each run in a network namespace of their own on one
bridge (edgeswarm/dev/netns/); the model is deployed as two replicas; default protocol timers. For
every scenario of edgeswarm/dev/netns/chaos.py it prints requests sent, succeeded and failed, p50/p99 latency
before/during/after the fault, the slowest request, the time until the coordinator marked the worker
down, and the time from the fault until a one-second window carried 80% of the throughput before it.
The fleet is secure (NetFleet: the coordinator's CA, workers joined with tokens, the client with the
admin's credentials), so every figure above already includes TLS. What TLS costs is printed after
them, measured in the same run once the namespaces are gone: the same requests (8 KiB, 400 KiB,
4 MiB) through a plaintext and a secure local fleet on 127.0.0.1, per request and per hop
(edgeswarm/dev/bench/tls.py, as in `edgeswarm bench` and bench/tls_cost.py; `--tls-requests 0`
skips it). Needs root, iproute2 and mosquitto (scripts/system-deps.sh installs them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import onnx

from edgeswarm.dev import zoo
from edgeswarm.dev.bench import tls
from edgeswarm.dev.loadgen import Load
from edgeswarm.dev.netns import chaos
from edgeswarm.dev.netns.namespaces import unavailable
from edgeswarm.dev.netns.network import Network
from edgeswarm.dev.netns.swarm import NetFleet
from edgeswarm.dev.reference import reference
from edgeswarm.graph.samples import sample_inputs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["builtin", "small"], default="builtin")
    parser.add_argument("--lanes", type=int, default=2, help="requests in flight")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each fault lasts")
    parser.add_argument("--tls-requests", type=int, default=100, help="per size and layout; 0: no TLS cost")
    parser.add_argument("--json", type=Path, help="also write the outcomes and the TLS cost here")
    args = parser.parse_args()
    if (reason := unavailable()) is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    model = (
        zoo.builtin_model()
        if args.model == "builtin"
        else zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=16)
    )
    with tempfile.TemporaryDirectory() as tmp, Network() as network:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        fleet = NetFleet(network, Path(tmp) / "fleet", workers=2)
        fleet.start()
        fleet.wait_ready()
        chaos.deploy_replicas(fleet, str(path), "model")
        inputs = sample_inputs(model, batch=1)
        outcomes = []
        want = reference(path, inputs)
        with Load(
            fleet.coordinator_address, "model", inputs, want, args.lanes, 30.0, credentials=fleet.credentials
        ) as load:
            for scenario in chaos.SCENARIOS:
                outcome = chaos.run(fleet, load, scenario, "worker1", hold=args.hold)
                print(f"{scenario.name}: {outcome.succeeded}/{outcome.sent} succeeded", file=sys.stderr)
                outcomes.append(outcome)
    with tempfile.TemporaryDirectory() as tmp:
        tls_rows = tls.tls_cost(Path(tmp), args.tls_requests) if args.tls_requests > 0 else []
    size = len(model.SerializeToString()) / 1e6
    print(f"model: {args.model} ({size:.1f} MB), 2 replicas, {args.lanes} requests in flight")
    print(chaos.table(outcomes))
    if tls_rows:
        print(f"\nWhat TLS costs, two local fleets on 127.0.0.1 in the same run:\n{tls.table(tls_rows)}")
    if args.json:
        figures = {"outcomes": [dataclasses.asdict(o) for o in outcomes]}
        figures["tls"] = [dataclasses.asdict(row) for row in tls_rows]
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if all(o.failed == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
