"""The `edgeswarm` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeswarm import __version__
from edgeswarm.cli.deploying import add_deploy_parser, deploy_command
from edgeswarm.cli.generate import add_generate_parser, generate_command
from edgeswarm.cli.tokens import add_token_parser, token_command
from edgeswarm.errors import EdgeswarmError
from edgeswarm.plans import Objective, Quantization

COORDINATOR_HELP = "HOST:PORT (default: the credentials file's, else 127.0.0.1:50051)"
CREDENTIALS_HELP = "credentials file of a secure fleet (default: $EDGESWARM_CREDENTIALS)"


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeswarm", description="A fleet of PCs as one inference service.")
    parser.add_argument("--version", action="version", version=f"edgeswarm {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a worker daemon on this PC")
    worker.add_argument("--config", help="TOML settings file")
    worker.add_argument("--listen", help="HOST:PORT to serve on")
    worker.add_argument("--interface", help="IP address mDNS advertises on")
    worker.add_argument("--fleet", help="fleet name; fleets on one LAN stay apart")
    worker.add_argument("--name", help="a name for this worker (default: host name)")
    worker.add_argument("--cache-dir", type=Path, help="shard cache directory")
    worker.add_argument("--threads", type=int, help="ONNX Runtime threads per stage (0: all cores)")
    worker.add_argument("--max-message-bytes", type=int)
    worker.add_argument("--metrics", help="HOST:PORT to serve Prometheus /metrics on")
    worker.add_argument("--mqtt", help="MQTT broker HOST:PORT for presence and telemetry")
    worker.add_argument("--state-dir", type=Path, help="where the worker keeps its fleet key and certificate")
    worker.add_argument("--join", help="a join token (edgeswarm token create --role worker): used once")
    worker.add_argument(
        "--insecure", action="store_true", default=None, help="plaintext, no certificates (loopback only)"
    )

    coordinator = sub.add_parser("coordinator", help="run the coordinator")
    coordinator.add_argument("--config", help="TOML settings file")
    coordinator.add_argument("--listen", help="HOST:PORT to serve on")
    coordinator.add_argument("--interface", help="IP address mDNS browses on")
    coordinator.add_argument("--fleet", help="fleet name")
    coordinator.add_argument("--max-message-bytes", type=int)
    coordinator.add_argument("--state-dir", type=Path, help="where the model store lives")
    coordinator.add_argument("--metrics", help="HOST:PORT to serve Prometheus /metrics on")
    coordinator.add_argument("--http", help="HOST:PORT to serve the OpenAI-compatible HTTP API on")
    coordinator.add_argument("--mqtt", help="MQTT broker HOST:PORT for fleet presence and events")
    coordinator.add_argument(
        "--insecure", action="store_true", default=None, help="plaintext, no CA, no tokens (loopback only)"
    )

    add_deploy_parser(sub, COORDINATOR_HELP, CREDENTIALS_HELP)

    undeploy = sub.add_parser("undeploy", help="remove a model from the fleet")
    undeploy.add_argument("name")
    undeploy.add_argument("--coordinator", help=COORDINATOR_HELP)
    undeploy.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)

    infer = sub.add_parser("infer", help="run a model on inputs from an .npz file")
    infer.add_argument("name")
    infer.add_argument("--input", type=Path, required=True, help=".npz with one array per input")
    infer.add_argument("--output", type=Path, required=True, help=".npz to write the outputs to")
    infer.add_argument("--coordinator", help=COORDINATOR_HELP)
    infer.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)
    infer.add_argument("--timeout", type=float, default=30.0)

    bench = sub.add_parser("bench", help="measure overheads and throughput against their bounds")
    bench.add_argument("--quick", action="store_true", help="one model, fewer requests (a smoke run)")
    bench.add_argument("--json", type=Path, help="write the results here")
    bench.add_argument("--chart", type=Path, help="draw a PNG chart here (needs matplotlib)")
    plan = sub.add_parser("plan", help="show what an auto deploy would place, with predicted figures")
    plan.add_argument("model", type=Path)
    plan.add_argument("--objective", choices=list(Objective), default=Objective.THROUGHPUT)
    plan.add_argument("--quantize", choices=list(Quantization), default="", help="plan the quantized model")
    plan.add_argument(
        "--fleet", type=Path, help="plan for a described fleet (JSON, see docs/placement.md) instead"
    )
    plan.add_argument("--coordinator", help=COORDINATOR_HELP)
    plan.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)
    shown = plan.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON document (keys in docs/placement.md)")
    shown.add_argument("--explain", action="store_true", help="the plan and its alternatives in sentences")
    drain = sub.add_parser("drain", help="stop a worker gracefully: requests it holds finish, none is lost")
    drain.add_argument("worker", help="the worker's name, id, or a unique prefix of its id")
    drain.add_argument("--coordinator", help=COORDINATOR_HELP)
    drain.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)
    status = sub.add_parser("status", help="show workers and models")
    status.add_argument("--coordinator", help=COORDINATOR_HELP)
    status.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)
    view = status.add_mutually_exclusive_group()
    view.add_argument("--json", action="store_true", help="every field, as one JSON document")
    view.add_argument("--wide", action="store_true", help="every column, worker names in the models table")

    models = sub.add_parser("models", help="show the coordinator's model store: models, variants, quota")
    models.add_argument("--coordinator", help=COORDINATOR_HELP)
    models.add_argument("--credentials", type=Path, help=CREDENTIALS_HELP)
    models.add_argument("--json", action="store_true", help="the store's section of `status --json`")

    inspect = sub.add_parser("inspect", help="show a model's inputs, size, cost and where it can be cut")
    inspect.add_argument("model", type=Path)
    inspect.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME=D0,D1,...",
        help="resolve an input's symbolic dimensions for the estimates (repeatable; default: 1)",
    )
    inspect.add_argument("--json", action="store_true", help="one JSON document (keys in docs/models.md)")
    inspect.add_argument("--all", action="store_true", help="list every cut position, not only natural ones")

    quantize = sub.add_parser("quantize", help="write the model as a deploy with --quantize places it")
    quantize.add_argument("model", type=Path)
    quantize.add_argument("--to", choices=list(Quantization), required=True)
    quantize.add_argument("--output", type=Path, required=True)

    add_token_parser(sub, COORDINATOR_HELP, CREDENTIALS_HELP)
    add_generate_parser(sub, COORDINATOR_HELP, CREDENTIALS_HELP)

    demo = sub.add_parser("demo", help="a coordinator and three workers on this machine, end to end")
    demo.add_argument("--requests", type=int, default=40)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _logging(args.log_level)
    try:
        return _run(args)
    except EdgeswarmError as exc:
        print(f"error: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _flags(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names}


def _run(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from edgeswarm.config import WorkerSettings, load
        from edgeswarm.worker.daemon import serve as serve_worker

        flags = _flags(
            args,
            "listen",
            "interface",
            "fleet",
            "name",
            "cache_dir",
            "threads",
            "max_message_bytes",
            "metrics",
            "mqtt",
            "state_dir",
            "join",
            "insecure",
        )
        asyncio.run(serve_worker(load(WorkerSettings, args.config, flags)))
        return 0
    if args.command == "coordinator":
        from edgeswarm.config import CoordinatorSettings, load
        from edgeswarm.coordinator.server import serve as serve_coordinator

        flags = _flags(
            args,
            "listen",
            "interface",
            "fleet",
            "max_message_bytes",
            "state_dir",
            "metrics",
            "http",
            "mqtt",
            "insecure",
        )
        asyncio.run(serve_coordinator(load(CoordinatorSettings, args.config, flags)))
        return 0
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "quantize":
        return _quantize(args)
    if args.command == "bench":
        from edgeswarm.dev.bench.harness import Settings
        from edgeswarm.dev.bench.report import tables
        from edgeswarm.dev.bench.run import run

        print(tables(run(Settings(quick=args.quick), args.json, args.chart)))
        return 0
    if args.command == "plan" and args.fleet is not None:
        return _plan_offline(args)
    if args.command == "demo":
        from edgeswarm.dev.demo import run_demo

        return int(run_demo(requests=args.requests))
    return _client_command(args)


def _quantize(args: argparse.Namespace) -> int:
    import onnx

    from edgeswarm.graph.externaldata import model_files
    from edgeswarm.graph.quantize import quantize

    model = onnx.load(str(args.model))  # with its external data: this holds the model whole
    quantized = quantize(model, Quantization(args.to))
    # Over protobuf's limit for one file, the weights go to a data file beside it.
    large = quantized.ByteSize() >= 2**31 - 1
    location = f"{args.output.name}.data"
    onnx.save(quantized, str(args.output), save_as_external_data=large, location=location)
    before = sum(size for _, _, size in model_files(args.model))
    after = sum(size for _, _, size in model_files(args.output))
    print(f"wrote {args.output}: {args.to}, {after} bytes ({after / before:.3f}x of {before})")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import onnx
    from google.protobuf.message import DecodeError

    from edgeswarm.graph.inspection import inspect_model, parse_input_shapes
    from edgeswarm.graph.partition import PartitionError
    from edgeswarm.graph.stagefiles import load_structure

    try:
        shapes = parse_input_shapes(args.input_shape)
        # The checker reads a path's external data itself, a weight at a time; the rest needs no weights.
        onnx.checker.check_model(str(args.model))
        model = load_structure(args.model)
        report = inspect_model(model, shapes)
    except (ValueError, DecodeError, PartitionError, onnx.checker.ValidationError) as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from edgeswarm.cli.tables import print_inspection

        print_inspection(str(args.model), report, every_cut=args.all)
    return 0


def _plan_offline(args: argparse.Namespace) -> int:
    import onnx

    from edgeswarm.coordinator.planning.fleetfile import figures_from
    from edgeswarm.coordinator.planning.plan_report import report
    from edgeswarm.coordinator.planning.planner import NoFit, plan
    from edgeswarm.coordinator.planning.segments import segments_of
    from edgeswarm.graph.partition import PartitionError
    from edgeswarm.graph.quantize import quantize
    from edgeswarm.graph.samples import sample_inputs

    try:
        model = onnx.load(str(args.model))
        if args.quantize:
            model = quantize(model, Quantization(args.quantize))
        segments = segments_of(model, sample_inputs(model, batch=1))
        figures = figures_from(json.loads(args.fleet.read_text()), segments)
        result = plan(segments.profile, figures, args.objective)
    except (OSError, ValueError, PartitionError, NoFit) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _show_plan(report(result, segments, {}, figures), args)
    return 0


def _show_plan(document: dict[str, Any], args: argparse.Namespace) -> None:
    from edgeswarm.coordinator.planning.plan_report import explain

    if args.json:
        print(json.dumps(document, indent=2))
    elif args.explain:
        print(explain(document))
    else:
        chosen = document["chosen"]
        routes = "; ".join(
            " -> ".join(f"{s['worker']}[{s['first_segment']}-{s['last_segment']}]" for s in p["stages"])
            for p in chosen["pipelines"]
        )
        print(
            f"{chosen['kind']}: {routes}; predicted {chosen['predicted_rps']:.1f} req/s, "
            f"{chosen['predicted_latency_ms']:.2f} ms"
        )
        sizes = document.get("model_bytes", {})
        if sizes:
            print("model bytes: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sizes.items()))


def _client_command(args: argparse.Namespace) -> int:
    import numpy as np

    from edgeswarm.client import Client

    with Client(args.coordinator, credentials=args.credentials) as client:
        if args.command == "token":
            return token_command(client, args)
        if args.command == "generate":
            return generate_command(client, args)
        if args.command == "deploy":
            return deploy_command(client, args)
        if args.command == "undeploy":
            client.undeploy(args.name)
            print(f"undeployed {args.name}")
        elif args.command == "plan":
            _show_plan(client.plan(args.model, objective=args.objective, quantize=args.quantize), args)
        elif args.command == "drain":
            worker_id, name = client.drain(args.worker)
            print(f"draining worker {name} ({worker_id[:8]})")
        elif args.command == "infer":
            with np.load(args.input) as npz:
                inputs = {name: npz[name] for name in npz.files}
            outputs = client.infer(args.name, inputs, timeout=args.timeout)
            np.savez(args.output, **outputs)  # type: ignore[arg-type]
            print(f"wrote {', '.join(outputs)} to {args.output}")
        elif args.command == "models":
            store = client.status().store
            if args.json:
                print(json.dumps(asdict(store), indent=2))
            else:
                from edgeswarm.cli.tables import print_store

                print_store(store)
        elif args.command == "status":
            report = client.status()
            if args.json:
                print(json.dumps(asdict(report), indent=2))
            else:
                from edgeswarm.cli.tables import print_status

                print_status(report, wide=args.wide)
    return 0


if __name__ == "__main__":
    sys.exit(main())
