"""Generation through a local fleet, for `edgeswarm bench` and bench/generate.py: ms between tokens
against one ONNX Runtime session running the same loop (the floor), tokens/s with sessions in flight
against the pipeline's bound, and the first token of a long prompt; every token checked."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import onnx

from edgeswarm.client import AsyncClient
from edgeswarm.dev.llm import tiny_llm
from edgeswarm.dev.localfleet import LOOPBACK, LocalFleet, free_port
from edgeswarm.dev.reference import generate_reference

PROMPT = tuple(range(1, 17))
# The benches' decoders: the tiny LLM's design at a given depth and width.
HEADS, KV_HEADS = 8, 4


def bench_llm(layers: int, width: int) -> onnx.ModelProto:
    return tiny_llm(layers=layers, d_model=width, heads=HEADS, kv_heads=KV_HEADS, d_ff=2 * width)


def long_prompt(length: int) -> tuple[int, ...]:
    """A prompt of `length` token ids, each a token of the tiny LLM's vocabulary."""
    return tuple(i % 250 + 1 for i in range(length))


def reference_per_token(path: Path, tokens: int) -> float:
    """The floor: the median seconds of one decode step in one session running the loop (its
    opening and the prompt's prefill not counted)."""
    steps: list[float] = []
    generate_reference(path, PROMPT, tokens, step_seconds=steps)
    return statistics.median(steps[1:])


async def per_token(
    fleet: LocalFleet, tokens: int, sessions: int, want: list[int], model: str = "llm"
) -> tuple[float, float]:
    """(median seconds between tokens of one session, tokens/s of all) with `sessions` in flight."""
    gaps: list[float] = []

    async def one(client: AsyncClient) -> int:
        got: list[int] = []
        last = time.perf_counter()
        async for token in client.generate_stream(model, token_ids=PROMPT, max_tokens=tokens, timeout=300):
            now = time.perf_counter()
            if got:
                gaps.append(now - last)
            got.append(token.token_id)
            last = now
        assert got == want, "tokens differ from the reference"
        return len(got)

    async with AsyncClient(fleet.coordinator_address, credentials=fleet.credentials) as client:
        await one(client)  # warm-up
        gaps.clear()
        start = time.perf_counter()
        made = sum(await asyncio.gather(*(one(client) for _ in range(sessions))))
        return statistics.median(gaps), made / (time.perf_counter() - start)


def first_token(fleet: LocalFleet, path: Path, model: str, length: int = 128) -> tuple[float, float]:
    """(seconds to the first token through the fleet, one session's prefill) for a `length`-token
    prompt, the medians of 3."""
    prompt = long_prompt(length)
    fleet_s, local_s = [], []
    with fleet.client() as client:
        for _ in range(3):
            start = time.perf_counter()
            next(iter(client.generate_stream(model, token_ids=prompt, max_tokens=1, timeout=300)))
            fleet_s.append(time.perf_counter() - start)
            steps: list[float] = []
            generate_reference(path, prompt, 1, step_seconds=steps)
            local_s.append(steps[0])
    return statistics.median(fleet_s), statistics.median(local_s)


def hop_figures(address: str, model: str) -> tuple[float, float]:
    """(steps, bytes) a worker sent on to the next stage for `model`, from its /metrics."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    found = {"steps": 0.0, "bytes": 0.0}
    for line in text.splitlines():
        for kind in found:
            if line.startswith(f'edgeswarm_session_hop_{kind}_total{{model="{model}"}}'):
                found[kind] = float(line.split()[-1])
    return found["steps"], found["bytes"]


def metered_workers(fleet: LocalFleet, count: int) -> dict[str, str]:
    """Starts `count` workers on `fleet` (started with none), each serving /metrics; waits for them
    and returns the address of each one's /metrics, by name."""
    metrics = {}
    for i in range(1, count + 1):
        metrics[f"worker{i}"] = f"{LOOPBACK}:{free_port()}"
        fleet.start_worker(f"worker{i}", "--metrics", metrics[f"worker{i}"])
    fleet.worker_count = count
    fleet.wait_ready(timeout=60)
    return metrics


def hop_bytes(folder: Path, path: Path, width: int, tokens: int = 16) -> list[dict[str, float]]:
    """Bytes the first of 2 stages sends on per decode step, against one token's hidden state
    (`width` float32), as the context grows: counted from the worker's /metrics."""
    rows = []
    with LocalFleet(folder / "hops", workers=0, threads=1) as fleet:
        metrics = metered_workers(fleet, 2)
        with fleet.client() as client:
            client.deploy(path, "llm-hops", mode="pipeline", stages=2, timeout=120)
            for context in (16, 256, 1024):
                prompt = long_prompt(context)
                before = {name: hop_figures(address, "llm-hops") for name, address in metrics.items()}
                client.generate("llm-hops", token_ids=prompt, max_tokens=tokens, timeout=300)
                after = {name: hop_figures(address, "llm-hops") for name, address in metrics.items()}
                steps, sent = max(
                    (a[0] - b[0], a[1] - b[1]) for a, b in zip(after.values(), before.values(), strict=True)
                )
                decode = (sent - context * width * 4) / (steps - 1)  # the prefill sends the prompt's
                rows.append({"context": context, "bytes_per_step": decode, "vs_hidden": decode / (width * 4)})
    return rows


def decoder(folder: Path, tokens: int, layers: int, width: int) -> dict[str, Any]:
    """One decoder's figures: 1, 2 and 3 stages on 3 local workers (the ring), 8 sessions through 2
    stages against the bound of 2 even stages (2 / the floor), and first tokens."""
    path = folder / f"llm-{width}.onnx"
    onnx.save(bench_llm(layers, width), str(path))
    want = generate_reference(path, PROMPT, tokens)
    floor = reference_per_token(path, tokens)
    rows = []
    with LocalFleet(folder / f"generation-{width}", workers=3, threads=1) as fleet:
        fleet.wait_ready(timeout=60)
        with fleet.client() as client:
            for stages in (1, 2, 3):
                client.deploy(path, f"llm-{stages}", mode="pipeline", stages=stages, timeout=120)
        for stages in (1, 2, 3):
            gap, rate = asyncio.run(per_token(fleet, tokens, 1, want, f"llm-{stages}"))
            fleet_first, local_first = first_token(fleet, path, f"llm-{stages}")
            rows.append({"stages": stages, "sessions": 1, "ms_per_token": 1000 * gap, "tokens_per_s": rate,
                         "first_token_ms": 1000 * fleet_first, "prefill_ms": 1000 * local_first})  # fmt: skip
        gap, rate = asyncio.run(per_token(fleet, tokens, 8, want, "llm-2"))
    # The floor is the faster of its readings before and after the fleet ran, as timeit takes the
    # fastest: other work on the machine only slows it.
    floor = min(floor, reference_per_token(path, tokens))
    for row in rows:
        row["vs_floor"] = row["ms_per_token"] / (1000 * floor)
    bound = 2 / floor  # two even stages, each busy all the time
    return {
        "model": {"layers": layers, "width": width, "prompt_tokens": len(PROMPT), "tokens": tokens},
        "floor_ms_per_token": 1000 * floor,
        "pipelines": rows,
        "eight_sessions": {
            "stages": 2,
            "tokens_per_s": rate,
            "bound_tokens_per_s": bound,
            "vs_bound": rate / bound,
        },
    }


# Two decoders of the tiny LLM's design: about 3 and 30 ms a token on one core of the 2-core machine
# the figures in docs/performance.md come from.
DECODERS = ((6, 256), (8, 1024))


def generation(folder: Path, tokens: int = 48) -> dict[str, Any]:
    """The figures of `edgeswarm bench`: each of DECODERS through 1, 2 and 3 stages, and the bytes a
    decode step sends across a boundary as the context grows."""
    decoders = [decoder(folder, tokens, layers, width) for layers, width in DECODERS]
    width = DECODERS[0][1]
    return {"decoders": decoders, "hop_bytes": hop_bytes(folder, folder / f"llm-{width}.onnx", width)}
