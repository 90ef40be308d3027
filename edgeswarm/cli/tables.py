"""Human-readable tables of fleet status, with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from edgeswarm.client import StatusReport


def status_tables(report: StatusReport) -> list[Table]:
    workers = Table(title=f"fleet {report.fleet!r} — workers")
    columns = (
        "id",
        "name",
        "address",
        "state",
        "cores",
        "GFLOP/s",
        "mem limit",
        "rtt ms",
        "stages",
        "in flight",
    )
    for column in columns:
        workers.add_column(column)
    for w in report.workers:
        rtt = float(w["rtt_ms"])
        workers.add_row(
            w["id"][:8],
            w["name"],
            w["address"],
            w["state"],
            str(w["cores"]),
            f"{float(w['calibration_gflops']):.1f}",
            _size(int(w["memory_limit"]) or None),
            f"{rtt:.2f}" if rtt else "-",
            ", ".join(w["loaded_stages"]) or "-",
            str(w["in_flight"]),
        )
    models = Table(title="models")
    model_columns = ("name", "version", "mode", "route", "stage", "inputs", "outputs", "workers (recent)")
    for column in (*model_columns, "predicted"):
        models.add_column(column)
    for m in report.models:
        routes = sorted({int(s["group"]) for s in m["stages"]})
        rps, ms = float(m["predicted_rps"]), float(m["predicted_latency_ms"])
        predicted = f"{rps:.1f} req/s, {ms:.1f} ms ({m['objective']})" if m["objective"] else "-"
        for s in m["stages"]:
            count = sum(1 for other in m["stages"] if other["group"] == s["group"])
            models.add_row(
                m["name"],
                m["version"],
                m["mode"],
                f"{routes.index(int(s['group'])) + 1}/{len(routes)}",
                f"{int(s['index']) + 1}/{count}",
                ", ".join(s["inputs"]),
                ", ".join(s["outputs"]),
                _workers_cell(s["workers"], s.get("recent_ms", [])),
                predicted,
            )
    if not report.links:
        return [workers, models]
    names = {w["id"]: w["name"] for w in report.workers}
    links = Table(title="links between workers")
    for column in ("between", "rtt ms", "bandwidth MB/s"):
        links.add_column(column)
    for link in report.links:
        between = " - ".join(names.get(link[end], link[end][:8]) for end in ("from_id", "to_id"))
        if link["reachable"]:
            links.add_row(between, f"{float(link['rtt_ms']):.2f}", f"{float(link['bandwidth_mbps']):.1f}")
        else:
            links.add_row(between, "unreachable", "-")
    return [workers, models, links]


def print_status(report: StatusReport, console: Console | None = None) -> None:
    console = console or Console()
    for table in status_tables(report):
        console.print(table)


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def _tensors(specs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t['name']} {t['datatype']} {t['shape']}" for t in specs)


def print_inspection(
    path: str, report: dict[str, Any], every_cut: bool = False, console: Console | None = None
) -> None:
    console = console or Console()
    params, gflops = _size(report["parameter_bytes"]), report["flops"] / 1e9
    console.print(f"[bold]{path}[/bold]: {report['nodes']} nodes, {params} of parameters, {gflops:.3f} GFLOP")
    console.print(f"inputs:  {_tensors(report['inputs'])}")
    console.print(f"outputs: {_tensors(report['outputs'])}")
    cuts = [c for c in report["cuts"] if every_cut or c["natural"]]
    table = Table(
        title=f"{'all' if every_cut else 'natural'} cut positions ({len(cuts)} of {len(report['cuts'])})"
    )
    for column in (
        "position",
        "after node",
        "rank",
        "FLOPs before",
        "params before",
        "boundary",
        "tensors crossing",
    ):
        table.add_column(column)
    total = max(report["flops"], 1)
    for c in cuts:
        table.add_row(
            str(c["position"]),
            c["after_node"],
            str(c["rank"]),
            f"{100 * c['flops_before'] / total:.1f}%",
            _size(c["parameter_bytes_before"]),
            _size(c["boundary_bytes"]),
            ", ".join(f"{t['name']} ({_size(t['bytes'])})" for t in c["tensors"]),
        )
    console.print(table)


def _workers_cell(workers: list[str], recent_ms: list[float]) -> str:
    """Each worker's id prefix, with what a request has lately taken through it when that is known
    (0, or missing from a coordinator too old to report it: not shown)."""
    cells = []
    for i, worker in enumerate(workers):
        ms = float(recent_ms[i]) if i < len(recent_ms) else 0.0
        cells.append(f"{worker[:8]} ({ms:.1f} ms)" if ms > 0 else worker[:8])
    return ", ".join(cells)
