"""Dynamic batching at the entry stage: requests that arrive together run as one ONNX Runtime call.

The first request of a batch waits up to `delay` seconds for others (or until `most` have come);
then the batch runs and each request gets its own slice of the outputs. No task is started: the
first request's own call runs the batch, the others wait for their results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.worker.runtime import StageRuntime

Result = list[tensor_pb2.Tensor]


@dataclass
class _Waiting:
    tensors: Sequence[tensor_pb2.Tensor]
    carry: Sequence[str]
    result: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Batch:
    items: list[_Waiting] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class Batcher:
    def __init__(self, runtime: StageRuntime) -> None:
        self.runtime = runtime
        self._open: dict[str, _Batch] = {}

    async def run(
        self, stage: str, tensors: Sequence[tensor_pb2.Tensor], carry: Sequence[str], most: int, delay: float
    ) -> Result:
        waiting = _Waiting(tensors, carry)
        batch = self._open.setdefault(stage, _Batch())
        batch.items.append(waiting)
        if len(batch.items) >= most:
            self._open.pop(stage, None)  # later requests start a new batch
            batch.full.set()
        if len(batch.items) == 1:
            await self._lead(stage, batch, delay, waiting)
        return await waiting.result

    async def _lead(self, stage: str, batch: _Batch, delay: float, leader: _Waiting) -> None:
        try:
            await asyncio.wait_for(batch.full.wait(), delay)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            # The first caller went away: the others still get their batch.
            self._close(stage, batch)
            leader.result.cancel()
            await self._execute(stage, [w for w in batch.items if w is not leader])
            raise
        self._close(stage, batch)
        await self._execute(stage, batch.items)

    def _close(self, stage: str, batch: _Batch) -> None:
        if self._open.get(stage) is batch:
            del self._open[stage]

    async def _execute(self, stage: str, items: list[_Waiting]) -> None:
        if not items:
            return
        try:
            results = await self.runtime.run_batch(stage, [(w.tensors, w.carry) for w in items])
        except Exception as exc:  # every request of the batch hears the cause
            for w in items:
                if not w.result.done():
                    w.result.set_exception(exc)
            return
        for w, result in zip(items, results, strict=True):
            if not w.result.done():
                w.result.set_result(result)
