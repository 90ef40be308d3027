"""Predicted throughput of the planner's layout against the splits other systems use, and planning time.

    python bench/planner.py

On described heterogeneous fleets (speeds 1:2:4, mixed memory; a 24-segment transformer-like model,
1 Gbit/s links, 0.3 ms round trips), prints the requests/s the planner predicts for its layout, for
one pipeline split in proportion to memory (exo's rule) and for one pipeline split equally, all
under the same cost model; then the planning time for 64 workers and 300 segments.
"""

from __future__ import annotations

import random
import statistics
import time

from edgeswarm.coordinator.planning.planner import ModelProfile, WorkerFigures, _Costs, plan

GB = 10**9
LINK = 125e6  # bytes/s: 1 Gbit/s
RTT = 3e-4


def model(segments: int, total_bytes: int, boundary: int = 64 * 1024) -> ModelProfile:
    return ModelProfile(
        segment_bytes=(total_bytes // segments,) * segments,
        boundary_bytes=(boundary,) * (segments - 1),
        input_bytes=boundary,
        output_bytes=boundary,
    )


def fleet(speeds: list[float], memories: list[int], segments: int, seconds: float) -> list[WorkerFigures]:
    """Workers whose segment time is `seconds` divided by their speed."""
    return [
        WorkerFigures(f"w{i}-x{speed:g}-{memory // GB}GB", memory, (seconds / speed,) * segments, LINK, RTT)
        for i, (speed, memory) in enumerate(zip(speeds, memories, strict=True))
    ]


def split_throughput(profile: ModelProfile, workers: list[WorkerFigures], shares: list[float]) -> float:
    """Requests/s of one pipeline over `workers` in order, segment counts in proportion to `shares`;
    0 when a stage does not fit its worker's memory."""
    s = profile.segments
    exact = [s * share / sum(shares) for share in shares]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(counts)), key=lambda i: exact[i] - counts[i], reverse=True)[: s - sum(counts)]:
        counts[i] += 1
    costs = _Costs(profile, workers)
    a, previous, worst = 0, None, 0.0
    for w, count in enumerate(counts):
        if count == 0:
            continue
        if not costs.fits(w, a, a + count):
            return 0.0
        worst = max(worst, costs.stage(previous, w, a, a + count))
        a, previous = a + count, w
    return 1.0 / worst


CASES = [
    ("3 PCs 1:2:4, 16 GB each, 6 GB model", [1, 2, 4], [16 * GB] * 3, 6 * GB),
    ("3 PCs 1:2:4, 16/8/4 GB (slowest has most), 10 GB model", [1, 2, 4], [16 * GB, 8 * GB, 4 * GB], 10 * GB),
    ("3 PCs 1:2:4, 4/8/16 GB, 14 GB model", [1, 2, 4], [4 * GB, 8 * GB, 16 * GB], 14 * GB),
    (
        "6 PCs 1,1,2,2,4,4, 8/16/4/8/4/16 GB, 12 GB model",
        [1, 1, 2, 2, 4, 4],
        [8 * GB, 16 * GB, 4 * GB, 8 * GB, 4 * GB, 16 * GB],
        12 * GB,
    ),
]


def main() -> None:
    segments, seconds = 24, 0.002
    print(
        "| fleet | planner layout | planner req/s | memory-proportional req/s | equal split req/s "
        "| vs memory | vs equal |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for title, speeds, memories, size in CASES:
        profile = model(segments, size)
        workers = fleet(speeds, memories, segments, seconds)
        result = plan(profile, workers)
        ours = result.chosen.throughput
        by_memory = split_throughput(profile, workers, [w.memory for w in workers])
        equal = split_throughput(profile, workers, [1.0] * len(workers))
        shape = " + ".join(str(len(p.stages)) for p in result.chosen.pipelines)
        layout = f"{result.chosen.kind} ({shape} stages)"

        def ratio(other: float, ours: float = ours) -> str:
            return f"{ours / other:.2f}x" if other else "does not fit"

        print(
            f"| {title} | {layout} | {ours:.1f} | {by_memory:.1f} | {equal:.1f} "
            f"| {ratio(by_memory)} | {ratio(equal)} |"
        )

    rng = random.Random(0)
    big_segments = 300
    profile = model(big_segments, 200 * GB)
    workers = fleet(
        [rng.choice([1, 2, 4]) for _ in range(64)],
        [rng.choice([4, 8, 16, 32]) * GB for _ in range(64)],
        big_segments,
        seconds,
    )
    times = []
    for _ in range(5):
        start = time.perf_counter()
        result = plan(profile, workers)
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"\nplanning 64 workers x {big_segments} segments: median {statistics.median(times):.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f}) over 5 runs; exact={result.exact}; "
        f"{result.chosen.kind}, {result.chosen.throughput:.1f} req/s predicted, bound {result.bound:.1f}"
    )


if __name__ == "__main__":
    main()
