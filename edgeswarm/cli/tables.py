"""Human-readable tables of fleet status and of a model's inspection, with rich.

Status comes narrow or wide. Narrow fits 80 columns: short ids, a stage's workers as a count, the
columns that say most. Wide has every column, and worker names where narrow counts them.
`print_status` prints wide when asked to or when the console has room for every column; `--json`
is the complete record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from edgeswarm.client import LinkStatus, ModelStatus, StageInfo, StatusReport, StoreStatus, WorkerStatus

SHORT_ID = 8
# Wide enough to measure a table at its natural width.
_UNBOUNDED = 10_000

_WORKER_COLUMNS = ("id", "name", "state", "GFLOP/s", "mem limit", "in flight")
_WORKER_COLUMNS_WIDE = (
    "id", "name", "address", "state", "cores", "GFLOP/s", "mem free", "mem used", "mem limit", "rtt ms",
    "MB/s", "stages", "in flight",
)  # fmt: skip
_MODEL_COLUMNS = ("model", "v", "mode", "route", "stage", "workers", "recent ms")
_MODEL_COLUMNS_WIDE = (
    "model", "version", "mode", "ready", "route", "stage", "inputs", "outputs", "workers (recent ms)",
    "predicted",
)  # fmt: skip
_STORE_COLUMNS = ("model", "sha256", "as sent", "int8", "int4", "live", "used")
_NUMERIC = {
    "GFLOP/s", "mem free", "mem used", "mem limit", "rtt ms", "MB/s", "cores", "in flight", "v", "version",
    "as sent", "int8", "int4",
}  # fmt: skip
# Names are never cut: folded onto a second line if they must be.
_NAMES = {"name", "model", "between", "workers (recent ms)"}


def status_tables(report: StatusReport, wide: bool = False) -> list[Table]:
    names = {w.id: w.name for w in report.workers}
    tables = [_workers_table(report, wide), _models_table(report.models, names, wide)]
    if report.links:
        tables.append(_links_table(report.links, names))
    if report.store.models:
        tables.append(store_table(report.store))
    return tables


def print_store(store: StoreStatus, console: Console | None = None) -> None:
    (console or Console()).print(store_table(store))


def store_table(store: StoreStatus) -> Table:
    """The model store: each model's bytes as sent and quantized, whether deployed, when last used."""
    quota = f"of {_size(store.quota)}" if store.quota else "no quota"
    table = _table(f"model store {store.path}: {_size(store.used)} {quota}", _STORE_COLUMNS)
    for m in sorted(store.models, key=lambda m: -m.last_used):
        variants = {
            method: f"{_size(m.variants[method])}\n{m.variants[method] / m.size:.2f}x"
            if method in m.variants
            else "-"
            for method in ("int8", "int4")
        }
        table.add_row(
            m.name, m.sha256[:SHORT_ID], _size(m.size), variants["int8"], variants["int4"],
            "yes" if m.deployed else "no", _ago(m.last_used),
        )  # fmt: skip
    return table


def _ago(when: float) -> str:
    seconds = max(0.0, time.time() - when)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def print_status(report: StatusReport, console: Console | None = None, wide: bool = False) -> None:
    """The status tables: wide if `wide` or if the console has room for all their columns."""
    console = console or Console()
    tables = status_tables(report, wide=True)
    if not wide and any(_natural_width(console, t) > console.width for t in tables):
        tables = status_tables(report, wide=False)
    for table in tables:
        console.print(table)


def short_id(worker_id: str) -> str:
    return worker_id[:SHORT_ID]


def _natural_width(console: Console, table: Table) -> int:
    return console.measure(table, options=console.options.update_width(_UNBOUNDED)).maximum


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in _NUMERIC else "left",
            overflow="fold" if column in _NAMES else "ellipsis",
        )
    return table


def _workers_table(report: StatusReport, wide: bool) -> Table:
    columns: tuple[str, ...] = _WORKER_COLUMNS_WIDE if wide else _WORKER_COLUMNS
    table = _table(f"fleet {report.fleet!r} — workers", columns)
    for w in report.workers:
        cells = _worker_cells(w)
        table.add_row(*(cells[c] for c in columns))
    return table


def _worker_cells(w: WorkerStatus) -> dict[str, str]:
    return {
        "id": short_id(w.id),
        "name": w.name,
        "address": w.address,
        "state": w.state,
        "cores": str(w.cores),
        "GFLOP/s": f"{w.calibration_gflops:.1f}",
        "mem free": _size(w.memory_available or None),
        "mem used": _size(w.memory_used),
        "mem limit": _size(w.memory_limit or None),
        "rtt ms": f"{w.rtt_ms:.2f}" if w.rtt_ms else "-",
        "MB/s": f"{w.bandwidth_mbps:.1f}" if w.bandwidth_mbps else "-",
        "stages": "\n".join(w.loaded_stages) or "-",
        "in flight": str(w.in_flight),
    }


def _models_table(models: Sequence[ModelStatus], names: dict[str, str], wide: bool) -> Table:
    columns: tuple[str, ...] = _MODEL_COLUMNS_WIDE if wide else _MODEL_COLUMNS
    if not wide and all(len({s.group for s in m.stages}) <= 1 for m in models):
        columns = tuple(c for c in columns if c != "route")  # every model is one route
    table = _table("models", columns)
    for m in models:
        routes = sorted({s.group for s in m.stages})
        for i, s in enumerate(m.stages):
            cells = _stage_cells(m, s, routes, names)
            if i > 0:  # the model's own figures on its first row only
                cells.update(dict.fromkeys(("model", "v", "version", "mode", "ready", "predicted"), ""))
            table.add_row(*(cells[c] for c in columns), end_section=i == len(m.stages) - 1)
    planned = [m for m in models if m.objective]
    if planned and not wide:
        table.caption = "\n".join(f"{m.name}: predicted {_predicted(m)}" for m in planned)
        table.caption_justify = "left"
    return table


def _stage_cells(m: ModelStatus, s: StageInfo, routes: list[int], names: dict[str, str]) -> dict[str, str]:
    in_route = sum(1 for other in m.stages if other.group == s.group)
    return {
        "model": m.name,
        "v": m.version,
        "version": m.version,
        "mode": m.mode,
        "ready": "yes" if m.ready else "no",
        "route": f"{routes.index(s.group) + 1}/{len(routes)}",
        "stage": f"{s.index + 1}/{in_route}",
        "inputs": ", ".join(s.inputs),
        "outputs": ", ".join(s.outputs),
        "workers": f"{len(s.workers)} worker{'s' if len(s.workers) != 1 else ''}",
        "recent ms": _recent_range(s.recent_ms),
        "workers (recent ms)": _workers_cell(s, names),
        "predicted": _predicted(m) if m.objective else "-",
    }


def _predicted(m: ModelStatus) -> str:
    return f"{m.predicted_rps:.1f} req/s, {m.predicted_latency_ms:.1f} ms ({m.objective})"


def _recent_range(recent_ms: Sequence[float]) -> str:
    """The range of what a request has lately taken through the stage's workers ("-": not known)."""
    known = [ms for ms in recent_ms if ms > 0]
    if not known:
        return "-"
    low, high = f"{min(known):.1f}", f"{max(known):.1f}"
    return low if low == high else f"{low}-{high}"


def _workers_cell(s: StageInfo, names: dict[str, str]) -> str:
    """Each worker's name (its short id if status does not list it) on a line of its own, with what
    a request has lately taken through it when that is known (0, or missing from an older
    coordinator: not shown)."""
    cells = []
    for i, worker in enumerate(s.workers):
        shown = names.get(worker) or short_id(worker)
        ms = s.recent_ms[i] if i < len(s.recent_ms) else 0.0
        cells.append(f"{shown} ({ms:.1f} ms)" if ms > 0 else shown)
    return "\n".join(cells)


def _links_table(links: Sequence[LinkStatus], names: dict[str, str]) -> Table:
    table = _table("links between workers", ("between", "rtt ms", "MB/s"))
    for link in links:
        between = " - ".join(names.get(end) or short_id(end) for end in (link.from_id, link.to_id))
        if link.reachable:
            table.add_row(between, f"{link.rtt_ms:.2f}", f"{link.bandwidth_mbps:.1f}")
        else:
            table.add_row(between, "unreachable", "-")
    return table


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
    quantized = report["quantized_bytes_estimate"]
    console.print(
        "quantized (estimated): " + ", ".join(f"{k} {_size(v)}" for k, v in sorted(quantized.items()))
    )
    console.print(f"inputs:  {_tensors(report['inputs'])}")
    console.print(f"outputs: {_tensors(report['outputs'])}")
    cuts = [c for c in report["cuts"] if every_cut or c["natural"]]
    table = Table(
        title=f"{'all' if every_cut else 'natural'} cut positions ({len(cuts)} of {len(report['cuts'])})"
    )
    # Two-line headers and folded names keep the table within 80 columns without cutting a name.
    for column in ("cut", "after node", "rank", "FLOPs\nbefore", "params\nbefore", "boundary"):
        table.add_column(column, overflow="fold", justify="left" if column == "after node" else "right")
    table.add_column("tensors crossing", overflow="fold")
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
