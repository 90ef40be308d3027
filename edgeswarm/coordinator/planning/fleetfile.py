"""A described fleet for `edgeswarm plan --fleet FLEET.json`: what-if planning without the workers.

    {"workers": [{"name": "pc1", "memory": 8e9, "gflops": 40,
                  "bandwidth": 125e6, "rtt": 0.0003}, ...]}

Each worker gives `memory` (bytes of weights it may hold), its speed as `gflops` (segment time =
the segment's estimated FLOPs / speed) or as `seconds` (one figure per segment), and optionally
its link: `bandwidth` in bytes/s (default unlimited) and `rtt` in seconds (default 0). A link
between two workers that differs from what their own figures give is listed in "links":

    {"links": [{"between": ["pc1", "pc2"], "bandwidth": 1e6, "rtt": 0.05}, ...]}

Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from edgeswarm.coordinator.planning.planner import PeerLink, WorkerFigures
from edgeswarm.coordinator.planning.segments import Segments


def figures_from(document: Mapping[str, Any], segments: Segments) -> list[WorkerFigures]:
    workers = document.get("workers")
    if not isinstance(workers, list) or not workers:
        raise ValueError('a fleet file needs a non-empty list "workers"')
    figures = []
    for index, worker in enumerate(workers):
        name = str(worker.get("name") or f"worker{index + 1}")
        try:
            if "seconds" in worker:
                seconds = tuple(float(s) for s in worker["seconds"])
                if len(seconds) != len(segments.parts):
                    raise ValueError(f"{len(seconds)} segment times for {len(segments.parts)} segments")
            else:
                speed = float(worker["gflops"]) * 1e9
                seconds = tuple(f / speed for f in segments.flops)
            figures.append(
                WorkerFigures(
                    id=name,
                    memory=int(float(worker["memory"])),
                    seconds=seconds,
                    bandwidth=float(worker.get("bandwidth", math.inf)),
                    rtt=float(worker.get("rtt", 0.0)),
                )
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"worker {name!r} of the fleet file: {exc}") from exc
    peers = _links(document.get("links", []), {f.id for f in figures})
    return [replace(f, peers=tuple(peers.get(f.id, []))) for f in figures]


def _links(links: Any, names: set[str]) -> dict[str, list[PeerLink]]:
    """Each link as a PeerLink of its first worker (the planner reads a pair from either end)."""
    if not isinstance(links, list):
        raise ValueError('"links" of a fleet file must be a list')
    peers: dict[str, list[PeerLink]] = {}
    for index, link in enumerate(links):
        try:
            a, b = (str(n) for n in link["between"])
            unknown = {a, b} - names
            if unknown or a == b:
                raise ValueError(f"needs two different workers of the file, got {[a, b]}")
            peer = PeerLink(b, float(link.get("rtt", 0.0)), float(link.get("bandwidth", math.inf)))
            if peer.rtt < 0 or peer.bandwidth <= 0:
                raise ValueError("rtt must be >= 0 and bandwidth > 0")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"link {index + 1} of the fleet file: {exc}") from exc
        peers.setdefault(a, []).append(peer)
    return peers
