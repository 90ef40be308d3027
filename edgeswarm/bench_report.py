"""How `edgeswarm bench` shows its results: markdown tables, and a PNG chart of the ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(results: dict[str, Any], path: Path) -> None:
    """Four panels of ratios: latency vs ORT, per hop vs raw gRPC, throughput vs bound, coordinator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    for i, row in enumerate(results["latency"]):
        names = list(row["layouts"])
        ax.bar([j + 0.4 * i for j in range(len(names))], [row["layouts"][n]["vs_ort"] for n in names], 0.4,
               label=row["model"])  # fmt: skip
        ax.set_xticks([j + 0.2 for j in range(len(names))], names, fontsize=8)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_title("latency, batch 1: p50 / one ORT session")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    hops = results["per_hop"]
    _bar_pairs(ax, hops, ("per_hop_ms", "per hop"), ("raw_grpc_round_trip_ms", "raw gRPC"))
    ax.set_xticks(range(len(hops)), [f"{r['bytes'] // 1024} KiB" for r in hops])
    ax.set_yscale("log")
    ax.set_title("per-hop overhead, ms")
    ax.legend(fontsize=8)
    ax = axes[1][0]
    rows = results["throughput"]
    _bar_pairs(
        ax, rows, ("vs_bound", "vs bound"), ("vs_cpu_bound", "vs what the cores serve at its CPU cost")
    )
    ax.set_xticks(range(len(rows)), [r["layout"].replace(", ", ",\n") for r in rows], fontsize=8)
    ax.axhline(0.9, color="red", linewidth=0.8, linestyle="--")
    ax.set_title("throughput / bound (target 0.9)")
    ax.set_ylim(0, 1.3)
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax = axes[1][1]
    c = results["coordinator"]
    ax.bar(["direct", "via coordinator"], [c["direct"]["rps"], c["via_coordinator"]["rps"]])
    ax.axhline(2500, color="red", linewidth=0.8, linestyle="--")
    ax.set_title("tiny model, requests/s (target 2500)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_pairs(ax: Any, rows: list[dict[str, Any]], left: tuple[str, str], right: tuple[str, str]) -> None:
    """Two bars per row, side by side: the figures under keys `left[0]` and `right[0]`, labelled."""
    for offset, (key, label) in ((-0.2, left), (0.2, right)):
        ax.bar([i + offset for i in range(len(rows))], [r[key] for r in rows], 0.4, label=label)


def tables(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    out = [f"machine: {results['machine']}", "", "| model | layout | p50 ms | ORT p50 ms | vs ORT |",
           "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for row in results["latency"]:
        for layout, f in row["layouts"].items():
            figures = f"{f['p50_ms']:.2f} | {row['ort_p50_ms']:.2f} | {f['vs_ort']:.2f}x"
            out.append(f"| {row['model']} | {layout} | {figures} |")
    out += [
        "",
        "| boundary | per hop ms | raw gRPC round trip ms | vs raw |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for r in results["per_hop"]:
        figures = f"{r['per_hop_ms']:.3f} | {r['raw_grpc_round_trip_ms']:.3f} | {r['vs_raw']:.2f}x"
        out.append(f"| {r['bytes'] // 1024} KiB | {figures} |")
    out += ["", "| model | layout | in flight | req/s | bound req/s | vs bound | p50 ms | p99 ms "
            "| CPU ms per request | cores' bound req/s | vs cores' bound |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in results["throughput"]:
        out.append(
            f"| {r['model']} | {r['layout']} | {r['in_flight']} | {r['rps']:.1f} | {r['bound_rps']:.1f} "
            f"| {r['vs_bound']:.2f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_ms_per_request']:.2f} "
            f"| {r['cpu_bound_rps']:.1f} | {r['vs_cpu_bound']:.2f}x |"
        )
    c = results["coordinator"]
    out += ["", "| tiny model | req/s (16 in flight) | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    for name in ("direct", "via_coordinator"):
        f = c[name]
        out.append(f"| {name.replace('_', ' ')} | {f['rps']:.0f} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} |")
    out.append(f"| added by the coordinator | | {c['added_p50_ms']:.3f} | {c['added_p99_ms']:.3f} |")
    d = results["data_path"]
    out += [
        "",
        f"{d['model']}, 3-stage pipeline: the coordinator handles "
        f"{d['coordinator_bytes_per_request']:.0f} tensor bytes per request (inputs in, outputs out); "
        f"{d['activation_bytes_between_stages']:.0f} bytes of "
        "activations cross the stage boundaries worker to worker.",
    ]
    peer_row = results["peer"]
    if "ray_serve" in peer_row:
        out += ["", "| 2 replicas, 4 in flight | req/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
        for name, key in (
            ("edgeswarm", "edgeswarm"),
            (f"Ray Serve {peer_row['ray_serve']['ray']}", "ray_serve"),
        ):
            f = peer_row[key]
            out.append(f"| {name} | {f['rps']:.1f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} |")
    else:
        out += ["", f"peer: {peer_row['skipped']}"]
    out += [f"measured in {results['seconds']:.0f} s"]
    return "\n".join(out)
