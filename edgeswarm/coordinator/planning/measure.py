"""Measuring the fleet for the planner: segment times on the workers themselves (one per machine
class), and the link to each worker; cached."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import grpc
import numpy as np

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.planning.planner import PeerLink, WorkerFigures
from edgeswarm.coordinator.planning.segments import Segments
from edgeswarm.coordinator.worker_client import SHARD_TIMEOUT_S, WorkerClient
from edgeswarm.errors import EdgeswarmError
from edgeswarm.graph.trivial import identity_chain
from edgeswarm.linkprobe import PING_BYTES
from edgeswarm.metrics import LINK_BANDWIDTH, LINK_RTT
from edgeswarm.security import routes

log = logging.getLogger(__name__)

# Workers whose calibration differs by less than this factor are one machine class.
CLASS_TOLERANCE = 1.15
# A worker whose calibration moved by more than this fraction since a plan was made has drifted.
DRIFT_TOLERANCE = 0.3
LINK_TTL_S = 300.0
PROFILE_REPEATS = 5
# Timed seconds of back-to-back trivial calls, after untimed warm-up ones: as a worker's segment
# profiling (worker/capacity.py), ten periods of a CPU quota once the quota left from before is used.
OVERHEAD_S = 1.0
OVERHEAD_WARM_UP_S = 0.25
PAIR_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TimedLink:
    """The link from the coordinator to a worker, as last timed."""

    rtt: float  # seconds
    bandwidth: float  # bytes per second
    overhead: float  # seconds per request through a trivial stage (round trip and handling)
    measured_at: float


def drifted(
    then: Mapping[str, float], now: Mapping[str, float], tolerance: float = DRIFT_TOLERANCE
) -> dict[str, tuple[float, float]]:
    """Workers known at both times whose calibration moved by more than `tolerance` of what it was,
    with (then, now). Pure."""
    return {
        w: (then[w], now[w])
        for w in sorted(then.keys() & now.keys())
        if then[w] > 0 and now[w] > 0 and abs(now[w] - then[w]) > tolerance * then[w]
    }


def machine_classes(calibrations: Mapping[str, float]) -> list[list[str]]:
    """Workers grouped by calibration (GFLOP/s): a class spans at most CLASS_TOLERANCE. Pure."""
    classes: list[list[str]] = []
    anchor = 0.0
    for worker, gflops in sorted(calibrations.items(), key=lambda item: (item[1], item[0])):
        if not classes or gflops > anchor * CLASS_TOLERANCE:
            classes.append([])
            anchor = gflops
        classes[-1].append(worker)
    return classes


@dataclass(frozen=True)
class TimedPair:
    """The link between two workers, as the first of them (by id) timed it."""

    rtt: float  # seconds; math.inf when one could not reach the other
    bandwidth: float  # bytes per second
    measured_at: float


def _merged(known: Sequence[PeerLink], timed: Sequence[PeerLink]) -> tuple[PeerLink, ...]:
    """`known` links with those `timed` again replaced."""
    fresh = {link.peer for link in timed}
    return (*(link for link in known if link.peer not in fresh), *timed)


class Measurer:
    """`client_of(worker)` is the worker's client; `describe(worker)` its last Describe answer;
    `address_of(worker)` the host:port other workers reach it at."""

    def __init__(
        self,
        client_of: Callable[[str], WorkerClient],
        describe: Callable[[str], worker_pb2.WorkerDescription | None],
        address_of: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_of = client_of
        self._describe = describe
        self._address_of = address_of
        self.clock = clock
        self.links: dict[str, TimedLink] = {}
        self.pairs: dict[tuple[str, str], TimedPair] = {}
        self._segments: dict[tuple[str, str], list[float]] = {}

    async def figures(
        self,
        segments: Segments,
        inputs: Mapping[str, np.ndarray],
        workers: Sequence[str],
        pair_workers: int = 8,
    ) -> list[WorkerFigures]:
        """Each worker's memory, segment times (measured on one worker of its class) and link to the
        coordinator; and, for up to `pair_workers` workers, the link between every pair."""
        descriptions = {w: self._describe(w) or worker_pb2.WorkerDescription() for w in workers}
        calibrations = {w: d.calibration_gflops for w, d in descriptions.items()}
        model_key = hashlib.sha256(
            "".join(hashlib.sha256(p.model).hexdigest() for p in segments.parts).encode()
        )
        classes = machine_classes(calibrations)
        timed = await asyncio.gather(
            *(self._class_times(model_key.hexdigest(), members[0], segments, inputs) for members in classes)
        )
        seconds = {worker: times for members, times in zip(classes, timed, strict=True) for worker in members}
        boundary = max(segments.profile.boundary_bytes, default=segments.profile.input_bytes)
        links = dict(
            zip(workers, await asyncio.gather(*(self.link(w, boundary) for w in workers)), strict=True)
        )
        figures = [
            WorkerFigures(
                id=w,
                memory=descriptions[w].memory_limit,
                seconds=tuple(seconds[w]),
                bandwidth=link.bandwidth,
                # The overhead, a round trip through a trivial stage, already holds the round trip.
                rtt=0.0,
                overhead=link.overhead,
            )
            for w, link in links.items()
        ]
        if len(workers) <= pair_workers:
            figures = await self.with_pairs(figures, itertools.combinations(sorted(workers), 2))
        return figures

    async def with_pairs(
        self, figures: Sequence[WorkerFigures], pairs: Iterable[tuple[str, str]]
    ) -> list[WorkerFigures]:
        """`figures` with the links between `pairs` of workers added, timed one pair at a time so that
        no two timings share a link."""
        timed: dict[str, list[PeerLink]] = {}
        for a, b in pairs:
            a, b = sorted((a, b))
            pair = await self.pair(a, b)
            if pair is None:
                continue
            # As a call's overhead holds the round trip to the coordinator, what a neighbour's round
            # trip adds is what it takes beyond that.
            own = [link.rtt for link in (self.links.get(a), self.links.get(b)) if link is not None]
            extra = max(pair.rtt - sum(own) / max(len(own), 1), 0.0)
            for end, other in ((a, b), (b, a)):
                timed.setdefault(end, []).append(PeerLink(other, extra, pair.bandwidth))
        return [replace(f, peers=_merged(f.peers, timed.get(f.id, []))) for f in figures]

    async def _class_times(
        self, model_key: str, worker: str, segments: Segments, inputs: Mapping[str, np.ndarray]
    ) -> list[float]:
        description = self._describe(worker)
        gflops = description.calibration_gflops if description else 0.0
        key = (model_key, f"{gflops:.0f}")
        if key in self._segments:
            return self._segments[key]
        try:
            times = await self._profile(worker, segments, inputs)
            log.info(
                "segments_profiled worker=%s segments=%d total_ms=%.2f",
                worker[:8],
                len(times),
                1000 * sum(times),
            )
        except EdgeswarmError as exc:
            # A model whose sample inputs it cannot run (say, ids out of range): estimate from FLOPs.
            speed = max(gflops, 0.1) * 1e9
            times = [f / speed for f in segments.flops]
            log.warning(
                "profile_failed worker=%s error=%r estimate=flops/calibration", worker[:8], exc.message
            )
        self._segments[key] = times
        return times

    async def _profile(
        self, worker: str, segments: Segments, inputs: Mapping[str, np.ndarray]
    ) -> list[float]:
        client = self._client_of(worker)
        digests = [hashlib.sha256(p.model).hexdigest() for p in segments.parts]
        cached = set((await client.describe()).cached_shards)
        for sha, part in zip(digests, segments.parts, strict=True):
            if sha not in cached:
                await client.put_shard(sha, part.model, SHARD_TIMEOUT_S)
        return await client.profile(digests, inputs, PROFILE_REPEATS, SHARD_TIMEOUT_S)

    async def link(self, worker: str, payload_bytes: int = 4096) -> TimedLink:
        """Round trip (least of three empty pings), bandwidth (1 MiB, best of two), and the mean time of
        back-to-back calls through a trivial stage carrying `payload_bytes` for OVERHEAD_S after
        OVERHEAD_WARM_UP_S (long enough to show a CPU quota)."""
        known = self.links.get(worker)
        if known is not None and self.clock() - known.measured_at < LINK_TTL_S:
            return known
        client = self._client_of(worker)
        rtt, bandwidth = await client.ping(PING_BYTES)
        overhead = await self._overhead(client, max(payload_bytes // 4, 1))
        link = TimedLink(rtt, bandwidth, overhead, self.clock())
        log.info(
            "link_measured worker=%s rtt_ms=%.3f bandwidth_mbps=%.1f overhead_ms=%.3f",
            worker[:8], 1000 * rtt, link.bandwidth / 1e6, 1000 * overhead,
        )  # fmt: skip
        self.links[worker] = link
        LINK_RTT.labels("coordinator", worker[:8]).set(rtt)
        LINK_BANDWIDTH.labels("coordinator", worker[:8]).set(bandwidth)
        return link

    async def _overhead(self, client: WorkerClient, floats: int) -> float:
        shard = identity_chain(floats).SerializeToString()
        sha = hashlib.sha256(shard).hexdigest()
        await client.put_shard(sha, shard, SHARD_TIMEOUT_S)
        await client.load_stage(sha, None, SHARD_TIMEOUT_S)
        tensors = codec.encode_all({"t0": np.zeros(floats, np.float32)})
        request = routes.sign_route(
            worker_pb2.StageRequest(
                request_id="overhead", tensors=tensors, route=[worker_pb2.Hop(stage=sha, carry=["t1"])]
            )
        )
        try:
            warm_until = time.perf_counter() + OVERHEAD_WARM_UP_S
            while time.perf_counter() < warm_until:
                await client.run_stage(request, timeout=10)
            calls, start = 0, time.perf_counter()
            while calls < 5 or time.perf_counter() - start < OVERHEAD_S:
                await client.run_stage(request, timeout=10)
                calls += 1
            return (time.perf_counter() - start) / calls
        finally:
            await client.unload_stage(sha, timeout=10)

    async def pair(self, a: str, b: str) -> TimedPair | None:
        """The link between workers `a` and `b` (a < b), as `a` times it by pinging `b`; cached for
        LINK_TTL_S. One that cannot reach the other gets an infinite round trip, which no plan takes
        (kept for `status`, but timed again at the next plan); None when `a` cannot time links."""
        known = self.pairs.get((a, b))
        if known is not None and math.isfinite(known.rtt) and self.clock() - known.measured_at < LINK_TTL_S:
            return known
        try:
            rtt, bandwidth = await self._client_of(a).measure_link(self._address_of(b), PAIR_TIMEOUT_S, b)
            pair = TimedPair(rtt, bandwidth, self.clock())
        except EdgeswarmError as exc:
            if exc.code is grpc.StatusCode.UNIMPLEMENTED:  # a worker of an older version: estimate
                return None
            log.warning("pair_unreachable from=%s to=%s error=%r", a[:8], b[:8], exc.message)
            pair = TimedPair(math.inf, 0.0, self.clock())
            self.pairs[(a, b)] = pair
            return pair
        LINK_RTT.labels(a[:8], b[:8]).set(pair.rtt)
        LINK_BANDWIDTH.labels(a[:8], b[:8]).set(pair.bandwidth)
        log.info(
            "pair_measured from=%s to=%s rtt_ms=%.3f bandwidth_mbps=%.1f",
            a[:8], b[:8], 1000 * pair.rtt, pair.bandwidth / 1e6,
        )  # fmt: skip
        self.pairs[(a, b)] = pair
        return pair
