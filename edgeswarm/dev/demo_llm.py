"""The generation part of `edgeswarm demo`: the built-in LLM (a Llama-style decoder with
deterministic weights, ~51 MB, Hugging Face's names) and a BPE tokenizer trained at build time on
text made by code, deployed as a 3-stage pipeline whose KV cache stays on the workers. A prompt's
text streams back as it is made; time to first token, ms a token and tokens/s are set against one
ONNX Runtime session running the same loop, and every token is checked against that session's."""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
from rich.console import Console

from edgeswarm.dev import llm
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import generate_reference
from edgeswarm.dev.texts import trained_tokenizer

PROMPT = "The quick fleet serves every token"
TOKENS = 48


@dataclass(frozen=True)
class Timing:
    first_token_s: float
    per_token_s: float  # median between tokens, after the first

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.per_token_s


@dataclass(frozen=True)
class Generated:
    tokens: int
    fleet: Timing
    local: Timing
    exact: bool


def demo_generation(fleet: LocalFleet, workdir: Path, console: Console) -> Generated:
    path, tokenizer_path = workdir / "llm.onnx", workdir / "tokenizer.json"
    onnx.save(llm.builtin_llm(), str(path))
    tokenizer = trained_tokenizer()
    tokenizer_path.write_text(tokenizer.to_str())
    with fleet.client() as client:
        client.deploy(path, "llm", mode="pipeline", stages=3, tokenizer=tokenizer_path, timeout=120)
        console.print(f"[bold]generating[/bold] {TOKENS} tokens after {PROMPT!r}, 3-stage pipeline:")
        start = time.perf_counter()
        ids, stamps = [], []
        for piece in client.generate_stream("llm", prompt=PROMPT, max_tokens=TOKENS, timeout=120):
            stamps.append(time.perf_counter())
            ids.append(piece.token_id)
            console.out(piece.text, end="", highlight=False)
    console.out("")
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    steps: list[float] = []
    want = generate_reference(path, tokenizer.encode(PROMPT).ids, TOKENS, step_seconds=steps)
    return Generated(
        len(ids),
        Timing(stamps[0] - start, statistics.median(gaps)),
        Timing(steps[0], statistics.median(steps[1:])),
        ids == want,
    )


def describe(generated: Generated) -> str:
    fleet, local = generated.fleet, generated.local
    verdict = "[green]the same tokens as the local session[/]" if generated.exact else "[red]TOKENS DIFFER[/]"
    return (
        f"generation, {generated.tokens} tokens: first token {1000 * fleet.first_token_s:.1f} ms "
        f"(local {1000 * local.first_token_s:.1f}), {1000 * fleet.per_token_s:.2f} ms a token "
        f"(local {1000 * local.per_token_s:.2f}, {fleet.per_token_s / local.per_token_s:.2f}x), "
        f"{fleet.tokens_per_s:.0f} tokens/s (local {local.tokens_per_s:.0f}); {verdict}"
    )
