"""Which workers hold which stage of a new deployment. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgeswarm.errors import InvalidRequest, PlacementError
from edgeswarm.plans import Mode


def asked_shape(mode: Mode | str, replicas: int, stages: int, live: int) -> tuple[int, int]:
    """(stages, replicas per stage) for a request; 0 means 'as many as the fleet allows'."""
    mode = Mode.parse(mode, "mode")
    if mode is Mode.AUTO:
        raise InvalidRequest("mode auto is placed by the planner, not by a shape")
    if replicas < 0 or stages < 0:
        raise InvalidRequest("replicas and stages must not be negative")
    if mode is Mode.REPLICAS:
        if stages not in (0, 1):
            raise InvalidRequest(f"replicas mode runs the whole model as one stage, not {stages}")
        return 1, replicas or max(live, 1)
    return stages or max(live, 2), replicas or 1


def fitted_shape(mode: Mode | str, replicas: int, stages: int, live: int) -> tuple[int, int]:
    """The shape `asked_shape` asks for, shrunk to what `live` workers can hold (at least one of each):
    fewer replicas per stage first, then fewer stages. Used to re-plan onto the workers that are left."""
    count, per_stage = asked_shape(mode, replicas, stages, live)
    live = max(live, 1)
    if count * per_stage <= live:
        return count, per_stage
    if count <= live:
        return count, live // count
    return live, 1


def place(
    model: str, stages: int, replicas: int, live: Sequence[str], load: Mapping[str, int]
) -> list[tuple[str, ...]]:
    """Workers for each stage, `replicas` distinct workers per stage, no worker twice; least loaded first."""
    needed = stages * replicas
    if needed > len(live):
        listing = ", ".join(w[:8] for w in sorted(live)) or "none"
        raise PlacementError(
            f"model {model!r}: {stages} stage(s) x {replicas} replica(s) need {needed} live workers; "
            f"{len(live)} live ({listing})"
        )
    ordered = sorted(live, key=lambda w: (load.get(w, 0), w))
    return [tuple(ordered[r * stages + s] for r in range(replicas)) for s in range(stages)]


def over_memory(
    model: str,
    stages: Sequence[tuple[int, tuple[str, ...]]],
    held: Mapping[str, int],
    limits: Mapping[str, int],
) -> str | None:
    """Why a placement does not fit, or None: `stages` (bytes, workers) of `model` beside the bytes each
    worker already `held` for other models (as measured when they loaded) must stay within each
    worker's memory limit (0 or absent: unknown, not checked)."""
    total = dict(held)
    for size, workers in stages:
        for worker in workers:
            total[worker] = total.get(worker, 0) + size
    for worker, used in sorted(total.items()):
        limit = limits.get(worker, 0)
        if limit and used > limit:
            mine = sum(size for size, workers in stages if worker in workers)
            return (
                f"model {model!r}: worker {worker[:8]} would hold {used} bytes ({mine} of them this "
                f"model's), over its memory limit of {limit} bytes; deploy it as more stages"
            )
    return None
