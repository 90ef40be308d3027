"""The generation part of `edgeswarm demo`: the zoo's tiny Llama-style LLM with its byte tokenizer,
deployed as a 3-stage pipeline whose KV cache stays on the workers; a prompt's tokens stream back as
they are made, and every token is checked against one ONNX Runtime session running the loop."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import onnx
from rich.console import Console

from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import generate_reference
from edgeswarm.dev.texts import byte_tokenizer

PROMPT = "Once upon a time"
TOKENS = 48


@dataclass(frozen=True)
class Generated:
    tokens: int
    seconds: float
    reference_seconds: float
    exact: bool


def demo_generation(fleet: LocalFleet, workdir: Path, console: Console) -> Generated:
    path, tokenizer_path = workdir / "tiny_llm.onnx", workdir / "tokenizer.json"
    onnx.save(zoo.tiny_llm(layers=6, d_model=128, heads=4, kv_heads=2, d_ff=256), str(path))
    tokenizer = byte_tokenizer()
    tokenizer_path.write_text(tokenizer.to_str())
    with fleet.client() as client:
        client.deploy(path, "tiny-llm", mode="pipeline", stages=3, tokenizer=tokenizer_path, timeout=120)
        console.print(f"[bold]generating[/bold] {TOKENS} tokens after {PROMPT!r} on a 3-stage pipeline:")
        start = time.perf_counter()
        ids = []
        for piece in client.generate_stream("tiny-llm", prompt=PROMPT, max_tokens=TOKENS, timeout=120):
            ids.append(piece.token_id)
            console.out(piece.text, end="", highlight=False)
        seconds = time.perf_counter() - start
    console.out("")
    start = time.perf_counter()
    want = generate_reference(path, tokenizer.encode(PROMPT).ids, TOKENS)
    reference_seconds = time.perf_counter() - start
    return Generated(len(ids), seconds, reference_seconds, ids == want)
