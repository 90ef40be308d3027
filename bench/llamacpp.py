"""llama.cpp beside one ONNX Runtime session on the same weights: the tiny LLM's weights, made by code,
written as a GGUF file and run by llama.cpp (llama-cpp-python) on one thread, against the reference
loop the fleet is measured against (docs/performance.md, Generation).

    python bench/llamacpp.py [--layers 8] [--width 1024] [--tokens 48]
        [--llama-bench PATH --rpc-server PATH]

llama.cpp runs in a Python of its own that has `llama-cpp-python` and `gguf` (built from source by
pip): $EDGESWARM_BENCH_LLAMA_PYTHON, or .venv-llama/ in the current directory. It is an optional
peer, never an edgeswarm dependency. The tokens are compared too: float32 in both, but different
kernels, so greedy tokens may part where two logits are close.

With `--llama-bench` and `--rpc-server` (llama.cpp's own tools, built with GGML_RPC from the
llama.cpp that llama-cpp-python vendors), llama.cpp's RPC mode is measured too: the layers split
over 2 RPC servers on 127.0.0.1, one thread each, as a 2-machine pipeline would be.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgeswarm.dev.bench.generation import HEADS, KV_HEADS, PROMPT, bench_llm
from edgeswarm.dev.localfleet import LOOPBACK, free_port, wait_until
from edgeswarm.dev.reference import generate_reference

PEER = Path(__file__).with_name("llamacpp_peer.py")
WEIGHT = re.compile(r"(embed|norm_w|w|w_gate|w_up|w_down)_\d+")
PER_LAYER = ("attn_norm", "q", "k", "v", "o", "ffn_norm", "gate", "up", "down")


def checkpoint(model: onnx.ModelProto, layers: int) -> dict[str, np.ndarray]:
    """The model's weights by role, in the order tiny_llm makes them: the embedding, each layer's
    norm, q, k, v, o, norm, gate, up, down ([in, out], as MatMul reads them), the last norm."""
    found = [numpy_helper.to_array(t) for t in model.graph.initializer if WEIGHT.fullmatch(t.name)]
    if len(found) != 2 + layers * len(PER_LAYER):
        raise SystemExit(f"expected the weights of {layers} layers, found {len(found)} tensors")
    weights = {"embed": found[0], "output_norm": found[-1]}
    for i in range(layers):
        for j, role in enumerate(PER_LAYER):
            weights[f"{i}.{role}"] = found[1 + i * len(PER_LAYER) + j]
    return weights


def llama_bench(tool: Path, gguf: Path, tokens: int, rpc: list[str]) -> float:
    """ms a token of llama-bench's generation test (no prompt, `tokens` made), over `rpc` servers."""
    argv = [str(tool), "-m", str(gguf), "-t", "1", "-p", "0", "-n", str(tokens), "-r", "3", "-o", "json"]
    if rpc:
        argv += ["--rpc", ",".join(rpc), "-ngl", "99"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    (row,) = json.loads(done.stdout)
    return 1000 / float(row["avg_ts"])


def rpc_servers(tool: Path, count: int) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """`count` llama.cpp RPC servers on 127.0.0.1, one thread each, once each accepts connections."""
    servers, ports = [], [free_port() for _ in range(count)]
    for port in ports:
        argv = [str(tool), "-H", LOOPBACK, "-p", str(port), "-t", "1"]
        servers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    addresses = [f"{LOOPBACK}:{port}" for port in ports]
    for port in ports:
        wait_until(lambda port=port: _accepts(port), 30, f"the RPC server on port {port}")
    return servers, addresses


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--llama-bench", type=Path, help="llama.cpp's llama-bench, built with GGML_RPC")
    parser.add_argument("--rpc-server", type=Path, help="llama.cpp's ggml-rpc-server")
    args = parser.parse_args()
    given = os.environ.get("EDGESWARM_BENCH_LLAMA_PYTHON")
    python = Path(given) if given else Path.cwd() / ".venv-llama/bin/python"
    if not python.exists():
        raise SystemExit(f"no Python with llama-cpp-python at {python} (set EDGESWARM_BENCH_LLAMA_PYTHON)")
    model = bench_llm(args.layers, args.width)
    weights = checkpoint(model, args.layers)
    config = {"layers": args.layers, "d_model": args.width, "heads": HEADS, "kv_heads": KV_HEADS,
              "d_ff": 2 * args.width, "vocab": len(weights["embed"]), "context": 512, "prompt": PROMPT,
              "tokens": args.tokens}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgeswarm-llama-") as tmp:
        folder = Path(tmp)
        onnx.save(model, str(folder / "llm.onnx"))
        np.savez(folder / "weights.npz", **weights)  # type: ignore[arg-type]
        (folder / "config.json").write_text(json.dumps(config))
        steps: list[float] = []
        want = generate_reference(folder / "llm.onnx", PROMPT, args.tokens, step_seconds=steps)
        done = subprocess.run(
            [str(python), str(PEER), str(folder / "weights.npz"), str(folder / "config.json"),
             str(folder / "llm.gguf")],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"llama.cpp run failed: {done.stderr.strip()[-2000:]}")
        rows = []
        if args.llama_bench and args.rpc_server:
            rows.append(
                (
                    "llama-bench, one process",
                    llama_bench(args.llama_bench, folder / "llm.gguf", args.tokens, []),
                )
            )
            servers, addresses = rpc_servers(args.rpc_server, 2)
            try:
                ms = llama_bench(args.llama_bench, folder / "llm.gguf", args.tokens, addresses)
                rows.append(("llama-bench, RPC: layers over 2 servers on 127.0.0.1", ms))
            finally:
                for server in servers:
                    server.kill()
                    server.wait()
    peer = json.loads(done.stdout.strip().splitlines()[-1])
    same = next((i for i, (a, b) in enumerate(zip(want, peer["tokens"], strict=False)) if a != b), len(want))
    onnx_ms = 1000 * statistics.median(steps[1:])
    print(
        f"tiny LLM: {args.layers} layers, width {args.width}; prompt {len(PROMPT)} tokens, {args.tokens} made"
    )
    print("| runtime, one thread | ms a token | vs ONNX Runtime |")
    print("| --- | ---: | ---: |")
    print(f"| ONNX Runtime, one session, its own cache | {onnx_ms:.2f} | 1.00x |")
    print(f"| llama.cpp (llama-cpp-python), float32 | {peer['ms_per_token']:.2f} | "
          f"{peer['ms_per_token'] / onnx_ms:.2f}x |")  # fmt: skip
    for label, ms in rows:
        print(f"| llama.cpp: {label} | {ms:.2f} | {ms / onnx_ms:.2f}x |")
    print(f"greedy tokens equal for the first {same} of {args.tokens}")


if __name__ == "__main__":
    main()
