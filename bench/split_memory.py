"""Time and peak memory of splitting a large model stored with external data.

    python bench/split_memory.py [--width 4096] [--layers 16] [--stages 4] [--verify]

Writes an MLP (width x width float32 weights per layer, MatMul + Tanh; the defaults make ~1 GiB)
layer by layer to an external data file, then, each in a fresh process, splits it into stage files the way the
coordinator does (`split_to_files`: weights copied from disk range by range) and, for comparison,
the in-memory way (`onnx.load` with every weight, then `split`). Prints the model size, the largest
stage, and each way's time and peak resident memory (VmHWM) with its ratio to the largest stage.
`--verify` also runs the stage files chained and the whole model in ONNX Runtime and compares outputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from edgeswarm.dev.bigmodel import memory_of, write_big_mlp

MIB = 1024 * 1024


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over from the parent."""
    return memory_of(0)["VmHWM"] / MIB


def split_streaming(path: Path, stages: int, out: Path) -> dict[str, object]:
    from edgeswarm.graph.partition import balanced_cuts
    from edgeswarm.graph.stagefiles import split_to_files

    baseline = peak_rss_mib()
    start = time.perf_counter()
    cuts = balanced_cuts(onnx.load(str(path), load_external_data=False), stages)
    files = split_to_files(path, cuts, out)
    seconds = time.perf_counter() - start
    sizes = [f.model.stat().st_size + (f.data.stat().st_size if f.data else 0) for f in files]
    return {
        "seconds": seconds,
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "cuts": cuts,
        "stage_bytes": sizes,
    }


def split_in_memory(path: Path, stages: int, out: Path) -> dict[str, object]:
    from edgeswarm.graph.partition import balanced_cuts, split

    baseline = peak_rss_mib()
    start = time.perf_counter()
    model = onnx.load(str(path))
    parts = split(model, balanced_cuts(model, stages))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
        "stage_bytes": [len(p.model) for p in parts],
    }


def verify(path: Path, out: Path, stages: int) -> dict[str, object]:
    import onnxruntime as ort

    from edgeswarm.graph.partition import balanced_cuts
    from edgeswarm.graph.stagefiles import split_to_files
    from edgeswarm.worker.runtime import session_options

    options = session_options(1, "basic")
    files = split_to_files(path, balanced_cuts(onnx.load(str(path), load_external_data=False), stages), out)
    width = (
        onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    )
    x = np.random.default_rng(1).standard_normal((1, width), dtype=np.float32)
    env = {"x": x}
    for f in files:
        session = ort.InferenceSession(str(f.model), options)
        env.update(
            zip(
                f.part.outputs,
                session.run(list(f.part.outputs), {n: env[n] for n in f.part.inputs}),
                strict=True,
            )
        )
        del session
    want = ort.InferenceSession(str(path), options).run(["y"], {"x": x})[0]
    return {"bit_exact": bool(np.array_equal(env["y"], want))}


def child(mode: str, path: Path, stages: int) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--model", str(path), "--stages", str(stages)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--child", choices=["streaming", "in-memory", "verify"], help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as out:
            run = {"streaming": split_streaming, "in-memory": split_in_memory}.get(args.child)
            result = (
                run(args.model, args.stages, Path(out)) if run else verify(args.model, Path(out), args.stages)
            )
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        write_big_mlp(path, layers=args.layers, width=args.width)
        model_bytes = path.stat().st_size + (path.parent / "model.data").stat().st_size
        print(
            f"model: MLP {args.layers} x {args.width}x{args.width} fp32, {model_bytes / MIB:.0f} MiB, "
            f"split into {args.stages} stages"
        )
        streaming = child("streaming", path, args.stages)
        in_memory = child("in-memory", path, args.stages)
        largest = max(streaming["stage_bytes"]) / MIB  # type: ignore[type-var,operator]
        print(f"largest stage: {largest:.0f} MiB (cuts {streaming['cuts']})")
        print(
            f"{'way':<12}{'seconds':>9}{'peak RSS MiB':>14}{'after imports':>15}{'peak/largest':>14}"
            f"{'(peak-imports)/largest':>24}"
        )
        for name, r in (("streaming", streaming), ("in-memory", in_memory)):
            peak, base = float(r["peak_mib"]), float(r["baseline_mib"])  # type: ignore[arg-type]
            print(
                f"{name:<12}{float(r['seconds']):>9.2f}{peak:>14.0f}{base:>15.0f}"  # type: ignore[arg-type]
                f"{peak / largest:>13.2f}x{(peak - base) / largest:>23.2f}x"
            )
        if args.verify:
            print(f"stage files chained vs whole model: {child('verify', path, args.stages)}")


if __name__ == "__main__":
    main()
