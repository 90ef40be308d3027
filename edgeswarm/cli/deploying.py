"""`edgeswarm deploy MODEL --name NAME`: place an ONNX model on the fleet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeswarm.client._async import DEFAULT_BATCH_DELAY_MS
from edgeswarm.plans import Mode, Objective, Quantization


def add_deploy_parser(sub: Any, coordinator_help: str, credentials_help: str) -> None:
    deploy = sub.add_parser("deploy", help="place an ONNX model on the fleet")
    deploy.add_argument("model", type=Path)
    deploy.add_argument("--name", required=True)
    deploy.add_argument(
        "--mode", choices=list(Mode), default=Mode.AUTO,
        help="auto: the planner chooses from measured figures (default)",
    )  # fmt: skip
    deploy.add_argument("--objective", choices=list(Objective), default=Objective.THROUGHPUT)
    deploy.add_argument("--batch-max", type=int, default=0, help="dynamic batching: most requests per call")
    deploy.add_argument(
        "--batch-delay-ms", type=float, default=DEFAULT_BATCH_DELAY_MS, help="dynamic batching: longest wait"
    )
    deploy.add_argument(
        "--quantize",
        choices=list(Quantization),
        default="",
        help="quantize first, as `edgeswarm quantize` does",
    )
    deploy.add_argument("--replicas", type=int, default=0, help="replicas (per stage in a pipeline); 0: auto")
    deploy.add_argument("--stages", type=int, default=0, help="pipeline stages; 0: one per live worker")
    deploy.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="OUTPUT=INPUT",
        help="a decoder output feeding an input at the next step (repeatable)",
    )
    deploy.add_argument("--tokenizer", type=Path, help="a tokenizer.json, for text prompts and text out")
    deploy.add_argument("--coordinator", help=coordinator_help)
    deploy.add_argument("--credentials", type=Path, help=credentials_help)
    deploy.add_argument("--timeout", type=float, default=600.0)


def deploy_command(client: Any, args: argparse.Namespace) -> int:
    info = client.deploy(
        args.model, name=args.name, mode=args.mode, replicas=args.replicas, stages=args.stages,
        timeout=args.timeout, objective=args.objective, batch_max=args.batch_max,
        batch_delay_ms=args.batch_delay_ms, quantize=args.quantize,
        states=dict(spec.partition("=")[::2] for spec in args.state), tokenizer=args.tokenizer,
    )  # fmt: skip
    placement = "; ".join(f"stage {s.index}: {', '.join(w[:8] for w in s.workers)}" for s in info.stages)
    print(f"deployed {info.name} version {info.version} as {info.mode}: {placement}")
    return 0
