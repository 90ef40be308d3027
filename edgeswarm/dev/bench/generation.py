"""Generation through a local fleet, for `edgeswarm bench` and bench/generate.py: ms between tokens
against one ONNX Runtime session running the same loop (the floor), tokens/s with sessions in flight
against the pipeline's bound, and the first token of a long prompt; every token checked."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import onnx

from edgeswarm.client import AsyncClient
from edgeswarm.dev.llm import tiny_llm
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import generate_reference

PROMPT = tuple(range(1, 17))


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
    prompt = tuple(i % 250 + 1 for i in range(length))
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


def generation(folder: Path, tokens: int = 48, layers: int = 6, width: int = 256) -> dict[str, Any]:
    """The figures of `edgeswarm bench`: 1, 2 and 3 stages on 3 local workers (the ring), 8 sessions
    through 2 stages against the bound of 2 even stages (2 / the floor), and first tokens."""
    path = folder / "llm.onnx"
    onnx.save(tiny_llm(layers=layers, d_model=width, heads=8, kv_heads=4, d_ff=2 * width), str(path))
    want = generate_reference(path, PROMPT, tokens)
    floor = reference_per_token(path, tokens)
    rows = []
    with LocalFleet(folder / "generation", workers=3, threads=1) as fleet:
        fleet.wait_ready(timeout=60)
        with fleet.client() as client:
            for stages in (1, 2, 3):
                client.deploy(path, f"llm-{stages}", mode="pipeline", stages=stages, timeout=120)
        for stages in (1, 2, 3):
            gap, rate = asyncio.run(per_token(fleet, tokens, 1, want, f"llm-{stages}"))
            fleet_first, local_first = first_token(fleet, path, f"llm-{stages}")
            rows.append({"stages": stages, "sessions": 1, "ms_per_token": 1000 * gap, "vs_floor": gap / floor,
                         "tokens_per_s": rate, "first_token_ms": 1000 * fleet_first,
                         "prefill_ms": 1000 * local_first})  # fmt: skip
        gap, rate = asyncio.run(per_token(fleet, tokens, 8, want, "llm-2"))
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
