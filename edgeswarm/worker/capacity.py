"""What a worker can do, measured with ONNX Runtime itself: a calibration figure at start, and the
time of each model segment at deploy. Blocking: run in a thread."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

CALIBRATION_SIZE = 256
# Untimed seconds before a measurement: they use up what a CPU quota left unused in its current period
# (and let a CPU reach its steady clock), which would otherwise make the first period's work look free.
WARM_UP_S = 0.25
# Timed seconds of segment profiling: ten periods of a CPU quota (100 ms), so that one period's
# misalignment with the window is at most a tenth of the figure.
PROFILE_S = 1.0


def calibrate(options: ort.SessionOptions, seconds: float = 0.5, warm_up: float = WARM_UP_S) -> float:
    """GFLOP/s of a 256x256 float32 MatMul in ONNX Runtime with the worker's session options, run
    back to back for `seconds` after `warm_up` seconds of the same (see WARM_UP_S)."""
    n = CALIBRATION_SIZE
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "calibration",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {x: rng.standard_normal((n, n), dtype=np.float32) for x in ("a", "b")}
    warm_until = time.perf_counter() + warm_up
    while time.perf_counter() < warm_until:
        session.run(None, feeds)
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        session.run(None, feeds)
        runs += 1
    return 2 * n**3 * runs / elapsed / 1e9


def groups_by_size(sizes: Sequence[int], budget: int) -> list[range]:
    """Consecutive index ranges whose sizes add up to at most `budget` each (an item larger than
    the budget alone). Pure."""
    groups: list[range] = []
    first, total = 0, 0
    for i, size in enumerate(sizes):
        if i > first and total + size > budget:
            groups.append(range(first, i))
            first, total = i, 0
        total += size
    if sizes:
        groups.append(range(first, len(sizes)))
    return groups


def profile_chain(
    paths: Sequence[Path],
    inputs: Mapping[str, np.ndarray],
    options: ort.SessionOptions,
    repeats: int,
    budget: int | None = None,
    warm_up: float = WARM_UP_S,
    min_seconds: float = PROFILE_S,
    run_options: ort.RunOptions | None = None,
    until: float | None = None,
) -> list[float]:
    """Mean seconds of each segment, each fed what the ones before it produced.

    Segments are opened together, in consecutive groups of at most `budget` file bytes (all at once
    when None), and run in turn, round after round: `warm_up` seconds untimed, then at least
    `repeats` rounds and `min_seconds`. A round's wall time is shared among its segments by the CPU
    time each used, so a pause of the whole process (a CPU quota's throttling, another program
    taking the core) is spread over the segments as their work is, instead of landing on whichever
    one happened to be running.

    Rounds stop early at `until` (a time.perf_counter() value) once one is timed; `run_options`
    carries the terminate flag that stops a run under way (ONNX Runtime then raises).
    """
    stop_at = math.inf if until is None else until
    env = dict(inputs)
    means: list[float] = []
    sizes = [path.stat().st_size for path in paths]
    for group in groups_by_size(sizes, budget if budget is not None else sum(sizes)):
        sessions = [
            ort.InferenceSession(str(paths[i]), options, providers=["CPUExecutionProvider"]) for i in group
        ]
        feeds = []
        for session in sessions:
            feeds.append({i.name: env[i.name] for i in session.get_inputs()})
            outputs = session.run(None, feeds[-1], run_options)  # what the next segment reads
            env.update(zip((o.name for o in session.get_outputs()), outputs, strict=True))
        warm_until = min(time.perf_counter() + warm_up, stop_at)
        while time.perf_counter() < warm_until:
            for session, feed in zip(sessions, feeds, strict=True):
                session.run(None, feed, run_options)
        cpu = [0.0] * len(sessions)
        walls = [0.0] * len(sessions)
        rounds, start = 0, time.perf_counter()
        while rounds < max(repeats, 1) or time.perf_counter() - start < min_seconds:
            if rounds and time.perf_counter() >= stop_at:
                break
            for k, (session, feed) in enumerate(zip(sessions, feeds, strict=True)):
                cpu_before, wall_before = time.process_time(), time.perf_counter()
                session.run(None, feed, run_options)
                cpu[k] += time.process_time() - cpu_before
                walls[k] += time.perf_counter() - wall_before
            rounds += 1
        wall = time.perf_counter() - start
        used = sum(cpu)
        shares = [c / used for c in cpu] if used > 0 else [w / sum(walls) for w in walls]
        means.extend(wall * share / rounds for share in shares)
    return means


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS), 0 where /proc does not tell."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
