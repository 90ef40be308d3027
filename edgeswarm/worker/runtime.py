"""ONNX Runtime sessions for the stages a worker holds, run in threads off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnxruntime as ort

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.config import Optimization
from edgeswarm.errors import DeadlineExceeded, InvalidRequest, NotFound
from edgeswarm.worker import capacity
from edgeswarm.worker.wire_runs import run_batch, run_wire

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Longest one Profile may take, whatever its caller's deadline.
MAX_PROFILE_S = 120.0

OPTIMIZATION_LEVELS = {
    Optimization.DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    Optimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    Optimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    Optimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(
    threads: int, optimization: Optimization | str = Optimization.BASIC
) -> ort.SessionOptions:
    """Options for a process that may host several sessions: no spinning, bounded threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = OPTIMIZATION_LEVELS[Optimization(optimization)]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


# A stage runs on the event loop once its last INLINE_AFTER runs each took at most INLINE_S, and only
# on at most INLINE_BYTES of tensors: the loop then waits no longer than a thread hand-off would cost.
INLINE_S = 0.0003
INLINE_AFTER = 3
INLINE_BYTES = 64 * 1024


class StageRuntime:
    """`optimized_dir`, when given, keeps each stage's graph as ONNX Runtime optimized it on this
    machine, so that a reload skips the optimization."""

    def __init__(
        self,
        threads: int = 0,
        optimization: Optimization | str = Optimization.BASIC,
        concurrency: int = 4,
        optimized_dir: Path | None = None,
    ) -> None:
        self._threads = threads
        self._optimization = Optimization(optimization)
        self._options = session_options(threads, optimization)
        self._optimized_dir = optimized_dir
        self._sessions: dict[str, ort.InferenceSession] = {}
        # Resident bytes each stage took as it loaded (this process's RSS before and after).
        self.memory: dict[str, int] = {}
        self._loading = asyncio.Lock()
        self._quick: dict[str, int] = {}  # stage -> how many of its last runs in a row were quick
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ort")
        self.concurrency = concurrency
        # Runs in a pool thread now, and those of them past their deadline (or given up by their
        # caller) that ONNX Runtime has not stopped yet: a kernel checks the terminate flag only
        # between nodes. When every thread holds one, the pool is saturated.
        self._running: set[int] = set()
        self.overdue: set[int] = set()
        self._tickets = itertools.count()
        self._saturated = False
        # Told True when the pool becomes saturated, False when a thread is free again.
        self.on_saturation: Callable[[bool], None] | None = None

    @property
    def loaded(self) -> list[str]:
        return sorted(self._sessions)

    def has(self, sha256: str) -> bool:
        return sha256 in self._sessions

    def inputs(self, sha256: str) -> list[str]:
        return [i.name for i in self._session(sha256).get_inputs()]

    def input_specs(self, sha256: str) -> list[ort.NodeArg]:
        """The stage's inputs as ONNX Runtime declares them: name, shape (ints and names), type."""
        return list(self._session(sha256).get_inputs())

    def outputs(self, sha256: str) -> list[str]:
        return [o.name for o in self._session(sha256).get_outputs()]

    async def load(self, sha256: str, path: Path, external: bool = False) -> None:
        """Opens a session on the stage at `path`; `external`: its weights are in data files beside
        it, which ONNX Runtime maps from there (no optimized copy is kept of such a stage)."""
        if sha256 in self._sessions:
            return
        loop = asyncio.get_running_loop()
        # One load at a time, so that the memory each takes is its own.
        async with self._loading:
            before = capacity.resident_bytes()
            try:
                session, cached = await loop.run_in_executor(self._pool, self._open, sha256, path, external)
            except Exception as exc:  # ORT raises its own exception types for a model it cannot load
                raise InvalidRequest(f"ONNX Runtime cannot load shard {sha256[:12]}: {exc}") from exc
            self.memory[sha256] = max(0, capacity.resident_bytes() - before)
        self._sessions[sha256] = session
        log.info(
            "stage_loaded shard=%s inputs=%s optimized_cache=%s resident_bytes=%d",
            sha256[:12], self.inputs(sha256), "hit" if cached else "miss", self.memory[sha256],
        )  # fmt: skip

    def _open(self, sha256: str, path: Path, external: bool = False) -> tuple[ort.InferenceSession, bool]:
        """A session on the stage; from this machine's optimized copy when there is one (its graph is
        already optimized, so nothing more is applied), else optimizing and keeping the result."""
        providers = ["CPUExecutionProvider"]
        if self._optimized_dir is None or external:
            return ort.InferenceSession(str(path), self._options, providers=providers), False
        optimized = self._optimized_dir / f"{sha256}-{self._optimization}-ort{ort.__version__}.onnx"
        if optimized.is_file():
            options = session_options(self._threads, "disable")
            return ort.InferenceSession(str(optimized), options, providers=providers), True
        self._optimized_dir.mkdir(parents=True, exist_ok=True)
        partial = optimized.with_suffix(f".{uuid.uuid4().hex}.partial")
        options = session_options(self._threads, self._optimization)
        options.optimized_model_filepath = str(partial)
        session = ort.InferenceSession(str(path), options, providers=providers)
        if partial.is_file():
            partial.replace(optimized)
        return session, False

    def unload(self, sha256: str) -> None:
        self._quick.pop(sha256, None)
        self.memory.pop(sha256, None)
        if self._sessions.pop(sha256, None) is not None:
            log.info("stage_unloaded shard=%s", sha256[:12])

    async def run(
        self,
        sha256: str,
        tensors: Sequence[tensor_pb2.Tensor],
        carry: Sequence[str],
        timeout: float | None = None,
    ) -> list[tensor_pb2.Tensor]:
        """Runs the stage on the wire tensors it reads and returns the `carry` tensors: its outputs,
        encoded, and any other received tensor handed on as it came. Decoding, the session and
        encoding run in a pool thread, so large tensors never hold up the event loop, except for a
        stage whose last runs all took under INLINE_S on small tensors: handing it to a thread and
        back would cost more than it does, so it runs here. A run in a thread still going after
        `timeout` seconds (the request's deadline) is stopped (ONNX Runtime's terminate flag), so a
        runaway graph cannot hold the worker past the request: DeadlineExceeded."""
        session = self._session(sha256)
        if self.runs_on_loop(sha256, tensors):
            return self._timed_run(sha256, session, tensors, carry)
        return await self._in_pool(
            sha256, timeout, lambda options: self._timed_run(sha256, session, tensors, carry, options)
        )

    async def run_arrays(
        self, sha256: str, feeds: Mapping[str, np.ndarray], outputs: Sequence[str], timeout: float | None
    ) -> list[np.ndarray]:
        """The stage's `outputs` on `feeds` (already decoded), in a pool thread, stopped at `timeout`
        as `run` is: a generation's step, whose state tensors stay in this process."""
        session = self._session(sha256)

        def call(options: ort.RunOptions) -> list[np.ndarray]:
            try:
                result: list[np.ndarray] = session.run(list(outputs), dict(feeds), options)
            except Exception as exc:  # ORT's own exception types
                raise InvalidRequest(f"stage {sha256[:12]}: ONNX Runtime rejected the step: {exc}") from exc
            return result

        return await self._in_pool(sha256, timeout, call)

    async def _in_pool(self, sha256: str, timeout: float | None, call: Callable[[ort.RunOptions], _T]) -> _T:
        """`call(options)` in a pool thread; `options.terminate` is set at `timeout` or when the caller
        gives up, and the thread counts as overdue from then until it is free."""
        loop = asyncio.get_running_loop()
        options = ort.RunOptions()
        ticket = next(self._tickets)
        self._running.add(ticket)
        stop = loop.call_later(timeout, self._stop, ticket, options) if timeout is not None else None
        try:
            return await loop.run_in_executor(self._pool, self._tracked, loop, ticket, call, options)
        except asyncio.CancelledError:
            self._stop(ticket, options)  # the caller gave up (its deadline, a disconnect): so does the run
            raise
        except InvalidRequest as exc:
            if options.terminate:
                raise DeadlineExceeded(
                    f"stage {sha256[:12]} was stopped at the request's deadline ({timeout:.3f} s)"
                ) from exc
            raise
        finally:
            if stop is not None:
                stop.cancel()

    def _tracked(
        self,
        loop: asyncio.AbstractEventLoop,
        ticket: int,
        call: Callable[[ort.RunOptions], _T],
        options: ort.RunOptions,
    ) -> _T:
        """`call` in a pool thread, telling the loop when the thread is free again."""
        try:
            return call(options)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is exiting
                loop.call_soon_threadsafe(self._ended, ticket)

    def _stop(self, ticket: int, options: ort.RunOptions) -> None:
        options.terminate = True
        if ticket in self._running:
            self.overdue.add(ticket)
            self._check_saturation()

    def _ended(self, ticket: int) -> None:
        self._running.discard(ticket)
        if ticket in self.overdue:
            self.overdue.discard(ticket)
            self._check_saturation()

    def _check_saturation(self) -> None:
        saturated = len(self.overdue) >= self.concurrency
        if saturated != self._saturated:
            self._saturated = saturated
            log.warning(
                "pool_%s overdue_runs=%d threads=%d",
                "saturated" if saturated else "free", len(self.overdue), self.concurrency,
            )  # fmt: skip
            if self.on_saturation is not None:
                self.on_saturation(saturated)

    def runs_on_loop(self, sha256: str, tensors: Sequence[tensor_pb2.Tensor]) -> bool:
        """Whether `run` would run the stage on these tensors on the event loop rather than in a thread."""
        if self._quick.get(sha256, 0) < INLINE_AFTER:
            return False
        sizes = [codec.declared_bytes(t) for t in tensors]
        return min(sizes, default=0) >= 0 and sum(sizes) <= INLINE_BYTES

    def _timed_run(
        self,
        sha256: str,
        session: ort.InferenceSession,
        tensors: Sequence[tensor_pb2.Tensor],
        carry: Sequence[str],
        options: ort.RunOptions | None = None,
    ) -> list[tensor_pb2.Tensor]:
        """run_wire, counting the stage's quick runs in a row."""
        start = time.perf_counter()
        carried = run_wire(sha256, session, tensors, carry, options)
        quick = time.perf_counter() - start <= INLINE_S
        self._quick[sha256] = self._quick.get(sha256, 0) + 1 if quick else 0
        return carried

    async def run_batch(
        self, sha256: str, requests: Sequence[tuple[Sequence[tensor_pb2.Tensor], Sequence[str]]]
    ) -> list[list[tensor_pb2.Tensor]]:
        """Runs several requests of one stage as one ONNX Runtime call when their inputs can be stacked
        along a batch dimension (else one call each); returns each request's `carry` tensors."""
        session = self._session(sha256)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, run_batch, sha256, session, requests)

    async def calibrate(self) -> float:
        """GFLOP/s of this worker's ONNX Runtime (see capacity.calibrate)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, capacity.calibrate, self._options)

    async def profile(
        self,
        paths: Sequence[Path],
        inputs: Mapping[str, np.ndarray],
        repeats: int,
        budget: int | None = None,
        timeout: float = MAX_PROFILE_S,
    ) -> list[float]:
        """Mean seconds of each segment at `paths`, chained on `inputs`, holding at most `budget` bytes
        of them open at once (see capacity.profile_chain). Rounds stop early as `timeout` nears (what
        was timed by then is the answer); a run still going at it is stopped: DeadlineExceeded."""
        loop = asyncio.get_running_loop()
        options = ort.RunOptions()
        until = time.perf_counter() + 0.8 * timeout
        stop = loop.call_later(timeout, setattr, options, "terminate", True)
        try:
            return await loop.run_in_executor(
                self._pool, functools.partial(
                    capacity.profile_chain, paths, inputs, self._options, repeats, budget,
                    run_options=options, until=until,
                ),
            )  # fmt: skip
        except asyncio.CancelledError:
            options.terminate = True
            raise
        except Exception as exc:  # ORT's own exception types: a segment it cannot load or run
            if options.terminate:
                raise DeadlineExceeded(f"profiling was stopped at its time limit ({timeout:.3g} s)") from exc
            raise InvalidRequest(f"profiling failed: {exc}") from exc
        finally:
            stop.cancel()

    def _session(self, sha256: str) -> ort.InferenceSession:
        try:
            return self._sessions[sha256]
        except KeyError:
            raise NotFound(f"stage {sha256[:12]} is not loaded on this worker") from None

    def close(self) -> None:
        self._sessions.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
