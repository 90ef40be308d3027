"""A stage reloaded from this machine's optimized copy gives the same outputs, to the bit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnx

from edgeswarm import codec
from edgeswarm.coordinator import zoo
from edgeswarm.worker.runtime import StageRuntime


def test_the_optimized_copy_is_kept_and_reloads_bit_exact(tmp_path: Path) -> None:
    model = zoo.transformer_encoder(layers=2, d_model=32, heads=4, d_ff=64, seq=8)
    path = tmp_path / "stage.onnx"
    onnx.save(model, str(path))
    tensors = codec.encode_all(zoo.sample_inputs(model, batch=2))

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
