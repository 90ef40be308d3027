"""Generation across a local fleet: per-token latency of the ring against the relay and one ONNX
Runtime session running the loop, tokens/s with several sessions in flight, and the time a session
takes to recover from a killed worker against its context length; every token checked.

    python bench/generate.py [--tokens 64] [--layers 6] [--width 256]

Two fleets of 3 workers (one ORT thread each, secure) in turn, one with the ring and one with
`ring=false` (each token answered back along the route, the next step sent from the coordinator).
The zoo's tiny Llama-style LLM is deployed as a 3-stage pipeline with 2 replicas per stage on 6
workers for the recovery run, so a killed worker leaves a route to move to.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

import onnx

from edgeswarm.dev.bench.generation import (
    PROMPT,
    bench_llm,
    first_token,
    long_prompt,
    per_token,
    reference_per_token,
)
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import generate_reference


def recovery(fleet: LocalFleet, path: Path, context: int) -> float:
    """Seconds of the longest gap between tokens when a worker holding the session is killed."""
    prompt = long_prompt(context)
    want = generate_reference(path, prompt, 12)
    before = {w: fleet.log(w).count("session_started") for w in fleet.workers}
    got, stamps = [], []
    with fleet.client() as client:
        for token in client.generate_stream("llm-spares", token_ids=prompt, max_tokens=12, timeout=300):
            got.append(token.token_id)
            stamps.append(time.perf_counter())
            if len(got) == 4:
                holder = next(w for w in fleet.workers if fleet.log(w).count("session_started") > before[w])
                fleet.kill_worker(holder)
    assert got == want, f"tokens differ after the failover at context {context}"
    return max(b - a for a, b in itertools.pairwise(stamps))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--recovery", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeswarm-generate-bench-") as tmp:
        path = Path(tmp) / "llm.onnx"
        onnx.save(bench_llm(args.layers, args.width), str(path))
        want = generate_reference(path, PROMPT, args.tokens)
        one = reference_per_token(path, args.tokens)
        print(
            f"tiny LLM: {args.layers} layers, width {args.width}; prompt {len(PROMPT)} tokens, "
            f"{args.tokens} generated"
        )
        print(f"one ONNX Runtime session, its own cache: {1000 * one:.2f} ms/token")
        print("| design | stages | sessions | ms between tokens | vs one session | tokens/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        firsts = []
        for label, env in (("ring", {}), ("relay", {"EDGESWARM_COORDINATOR_RING": "false"})):
            with LocalFleet(Path(tmp) / label, workers=3, secure=True, env=env) as fleet:
                fleet.wait_ready(timeout=60)
                shapes = (1, 2, 3) if label == "ring" else (3,)
                with fleet.client() as client:
                    for stages in shapes:
                        client.deploy(path, f"llm-{stages}", mode="pipeline", stages=stages, timeout=120)
                for stages in shapes:
                    for sessions in (1, 4, 8) if stages == 2 or label == "relay" else (1,):
                        gap, rate = asyncio.run(
                            per_token(fleet, args.tokens, sessions, want, f"llm-{stages}")
                        )
                        row = f"{1000 * gap:.2f} | {gap / one:.2f}x | {rate:.0f}"
                        print(f"| {label} | {stages} | {sessions} | {row} |")
                if label == "ring":
                    firsts = [(stages, *first_token(fleet, path, f"llm-{stages}")) for stages in shapes]
        print("\n| stages | first token of a 128-token prompt, ms | one session's prefill, ms |")
        print("| ---: | ---: | ---: |")
        for stages, fleet_s, local_s in firsts:
            print(f"| {stages} | {1000 * fleet_s:.1f} | {1000 * local_s:.1f} |")
        if not args.recovery:
            return
        print("\n| context tokens | longest gap when a worker is killed, s |")
        print("| ---: | ---: |")
        for context in (16, 256, 1024):
            with LocalFleet(Path(tmp) / f"spares-{context}", workers=6, secure=True) as fleet:
                fleet.wait_ready(timeout=60)
                with fleet.client() as client:
                    client.deploy(path, "llm-spares", mode="pipeline", stages=3, replicas=2, timeout=120)
                print(f"| {context} | {recovery(fleet, path, context):.3f} |")


if __name__ == "__main__":
    main()
