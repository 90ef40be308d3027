"""A stage reloaded from this machine's optimized copy gives the same outputs, to the bit; a quick stage
runs on the event loop only while it stays quick."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm import codec
from edgeswarm.dev import zoo
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.worker import runtime as runtime_module
from edgeswarm.worker.runtime import StageRuntime


def test_the_optimized_copy_is_kept_and_reloads_bit_exact(tmp_path: Path) -> None:
    model = zoo.transformer_encoder(layers=2, d_model=32, heads=4, d_ff=64, seq=8)
    path = tmp_path / "stage.onnx"
    onnx.save(model, str(path))
    tensors = codec.encode_all(sample_inputs(model, batch=2))

    async def outputs() -> np.ndarray:
        runtime = StageRuntime(threads=1, optimized_dir=tmp_path / "optimized")
        try:
            await runtime.load("ab" * 32, path)
            (hidden,) = await runtime.run("ab" * 32, tensors, ["hidden"])
            return codec.decode(hidden)
        finally:
            runtime.close()

    first = asyncio.run(outputs())
    kept = list((tmp_path / "optimized").iterdir())
    assert [p.suffix for p in kept] == [".onnx"]
    second = asyncio.run(outputs())
    np.testing.assert_array_equal(first, second)


def test_a_stage_runs_on_the_loop_only_while_it_stays_quick_on_small_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "identity.onnx"
    onnx.save(zoo.identity_chain(16), str(path))
    small = codec.encode_all({"t0": np.arange(16, dtype=np.float32)})
    large = codec.encode_all({"t0": np.zeros(runtime_module.INLINE_BYTES // 4 + 1, np.float32)})

    async def scenario() -> list[bool]:
        runtime = StageRuntime(threads=1)
        seen = []
        try:
            await runtime.load("cd" * 32, path)
            monkeypatch.setattr(runtime_module, "INLINE_S", 1.0)  # every run is quick, however loaded
            for _ in range(runtime_module.INLINE_AFTER + 1):
                seen.append(runtime.runs_on_loop("cd" * 32, small))
                (out,) = await runtime.run("cd" * 32, small, ["t1"])
                np.testing.assert_array_equal(codec.decode(out), np.arange(16, dtype=np.float32))
            seen.append(runtime.runs_on_loop("cd" * 32, large))
            lying = codec.encode_all({"t0": np.arange(16, dtype=np.float32)})
            lying[0].shape[:] = [-16]  # a shape no size can be read from: the pool path names the error
            seen.append(runtime.runs_on_loop("cd" * 32, lying))
            monkeypatch.setattr(runtime_module, "INLINE_S", 0.0)  # from now on every run is slow
            await runtime.run("cd" * 32, small, ["t1"])
            seen.append(runtime.runs_on_loop("cd" * 32, small))
        finally:
            runtime.close()
        return seen

    first_runs = [False] * runtime_module.INLINE_AFTER
    assert asyncio.run(scenario()) == [*first_runs, True, False, False, False]
