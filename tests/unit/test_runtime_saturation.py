"""A pool whose every thread holds a run past its deadline says so, and says when a thread is free."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import onnx

from edgeswarm import codec
from edgeswarm.errors import DeadlineExceeded
from edgeswarm.worker.runtime import StageRuntime
from tests.helpers import one_long_kernel


class Told:
    """What the runtime said of its pool, in order; `wait(n)` returns once it has said n things."""

    def __init__(self) -> None:
        self.said: list[bool] = []
        self._changed = asyncio.Event()

    def __call__(self, saturated: bool) -> None:
        self.said.append(saturated)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10.0) -> list[bool]:
        async with asyncio.timeout(timeout):
            while len(self.said) < count:
                await self._changed.wait()
                self._changed.clear()
        return self.said


async def test_runs_past_their_deadline_in_every_thread_saturate_the_pool_until_one_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.onnx"
    onnx.save(one_long_kernel(), str(path))
    runtime = StageRuntime(threads=1, concurrency=1)
    told = Told()
    runtime.on_saturation = told
    try:
        await runtime.load("s", path)
        x = codec.encode_all({"x": np.ones(1, np.float32)})
        run = asyncio.ensure_future(runtime.run("s", x, ["y"], timeout=0.01))
        assert await told.wait(1) == [True] and not run.done()  # past its deadline, its thread still busy
        with contextlib.suppress(DeadlineExceeded):  # stopped, or its one kernel was already under way
            await run
        assert await told.wait(2) == [True, False] and not runtime.overdue
    finally:
        runtime.close()


async def test_a_run_given_up_by_its_caller_counts_as_overdue_while_its_thread_is_busy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.onnx"
    onnx.save(one_long_kernel(), str(path))
    runtime = StageRuntime(threads=1, concurrency=2)
    told = Told()
    runtime.on_saturation = told
    try:
        await runtime.load("s", path)
        x = codec.encode_all({"x": np.ones(1, np.float32)})
        runs = [asyncio.ensure_future(runtime.run("s", x, ["y"])) for _ in range(2)]
        await asyncio.sleep(0.05)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        assert told.said == [True] and len(runtime.overdue) == 2
        assert await told.wait(2) == [True, False]
    finally:
        runtime.close()
