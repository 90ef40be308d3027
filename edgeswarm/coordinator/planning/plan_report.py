"""A planner result as the JSON document `edgeswarm plan --json` prints, and in sentences. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from edgeswarm.coordinator.planning.planner import Layout, PlanResult, WorkerFigures
from edgeswarm.coordinator.planning.segments import Segments


def report(
    result: PlanResult,
    segments: Segments,
    names: Mapping[str, str],
    figures: Sequence[WorkerFigures] = (),
) -> dict[str, Any]:
    """The chosen layout and every alternative, with predicted requests/s and latency, and the links
    between workers that the figures hold (measured, or given in a fleet file)."""
    return {
        "objective": result.objective,
        "exact": result.exact,
        "bound_rps": round(result.bound, 3),
        "segments": len(segments.parts),
        "parameter_bytes": sum(segments.profile.segment_bytes),
        "cut_positions": list(segments.positions),
        "chosen": _layout(result.chosen, segments, names),
        "alternatives": [_layout(layout, segments, names) for layout in result.alternatives[1:]],
        "links": _links(figures, names),
    }


def _links(figures: Sequence[WorkerFigures], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each pair once; a pair one end could not reach has null figures."""
    pairs = {tuple(sorted((w.id, link.peer))): link for w in figures for link in w.peers}
    return [
        {
            "between": [names.get(a, a), names.get(b, b)],
            "rtt_ms": round(1000 * link.rtt, 3) if math.isfinite(link.rtt) else None,
            "bandwidth_mbps": round(link.bandwidth / 1e6, 3) if link.bandwidth > 0 else None,
        }
        for (a, b), link in sorted(pairs.items())
    ]


def _layout(layout: Layout, segments: Segments, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "kind": layout.kind,
        "predicted_rps": round(layout.throughput, 3),
        "predicted_latency_ms": round(1000 * layout.latency, 3),
        "pipelines": [
            {
                "predicted_rps": round(p.throughput, 3),
                "stages": [
                    {
                        "worker": names.get(s.worker, s.worker),
                        "worker_id": s.worker,
                        "first_segment": s.first,
                        "last_segment": s.last,
                        "first_node": segments.start(s.first),
                        "last_node": segments.end(s.last),
                        "expected_ms": round(1000 * s.seconds, 3),
                    }
                    for s in p.stages
                ],
            }
            for p in layout.pipelines
        ],
    }


def explain(document: Mapping[str, Any]) -> str:
    """The report in sentences."""
    chosen = document["chosen"]
    lines = [
        f"Objective: {document['objective']}. The model was cut into {document['segments']} segments at "
        f"nodes {', '.join(map(str, document['cut_positions'])) or '(none)'}.",
        f"Chosen: {_sentence(chosen)}",
    ]
    for index, pipeline in enumerate(chosen["pipelines"], start=1):
        for stage in pipeline["stages"]:
            lines.append(
                f"  route {index}: {stage['worker']} runs segments {stage['first_segment']}-"
                f"{stage['last_segment']} (nodes {stage['first_node']}-{stage['last_node']}), "
                f"about {stage['expected_ms']:.2f} ms per request."
            )
    best = chosen["predicted_rps"]
    for other in document["alternatives"]:
        ratio = other["predicted_rps"] / best if best else 0.0
        lines.append(f"Considered: {_sentence(other)} That is {ratio:.2f}x the chosen throughput.")
    if document.get("links"):
        lines.append(
            "Links between workers, as the planner costs them: "
            + "; ".join(_link_phrase(link) for link in document["links"])
            + "."
        )
    search = "exhaustive" if document["exact"] else "heuristic (fastest workers first, bisection)"
    lines.append(
        f"The pipeline search was {search}; no layout can exceed {document['bound_rps']:.1f} requests/s "
        "(every worker running the whole model at its own speed)."
    )
    return "\n".join(lines)


def _link_phrase(link: Mapping[str, Any]) -> str:
    a, b = link["between"]
    if link["rtt_ms"] is None or link["bandwidth_mbps"] is None:
        return f"{a}-{b} unreachable"
    return f"{a}-{b} {link['rtt_ms']:.2f} ms, {link['bandwidth_mbps']:.1f} MB/s"


def _sentence(layout: Mapping[str, Any]) -> str:
    shapes = [len(p["stages"]) for p in layout["pipelines"]]
    if layout["kind"] == "replicas":
        what = f"{len(shapes)} whole-model replica(s)"
    elif layout["kind"] == "pipeline":
        what = f"one {shapes[0]}-stage pipeline"
    else:
        what = "side by side: " + ", ".join(f"{n}-stage" if n > 1 else "a replica" for n in shapes)
    return (
        f"{what}, predicted {layout['predicted_rps']:.1f} requests/s and "
        f"{layout['predicted_latency_ms']:.2f} ms per request."
    )
