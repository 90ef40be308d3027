"""How `edgeswarm bench` shows its results: markdown tables, and a PNG chart of the ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def chart(results: dict[str, Any], path: Path) -> None:
    """Four panels: latency vs ORT, per hop vs bare grpc.aio and raw gRPC, throughput, coordinator."""
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
    _bars(
        ax,
        hops,
        ("per_hop_ms", "per hop"),
        ("bare_aio_hop_ms", "bare grpc.aio hop"),
        ("raw_grpc_round_trip_ms", "raw gRPC round trip"),
    )
    ax.set_xticks(range(len(hops)), [f"{r['bytes'] // 1024} KiB" for r in hops])
    ax.set_yscale("log")
    ax.set_title("per-hop overhead, ms")
    ax.legend(fontsize=8)
    ax = axes[1][0]
    rows = results["throughput"]
    _bars(ax, rows, ("vs_bound", "vs bound"), ("vs_cpu_bound", "vs what the cores serve at its CPU cost"))
    ax.set_xticks(range(len(rows)), [r["layout"].replace(", ", ",\n") for r in rows], fontsize=8)
    ax.axhline(0.9, color="red", linewidth=0.8, linestyle="--")
    ax.set_title("throughput / bound (target 0.9)")
    ax.set_ylim(0, 1.3)
    ax.legend(fontsize=7, loc="upper left", ncols=2)
    ax = axes[1][1]
    c = results["coordinator"]
    paths = {"worker\ndirect": "direct", "via\ncoordinator": "via_coordinator", "bare echo": "bare_echo",
             "via bare\nrelay": "bare_relay"}  # fmt: skip
    ax.bar(list(paths), [c[key]["rps"] for key in paths.values()], color=["C0", "C0", "C7", "C7"])
    ax.axhline(2500, color="red", linewidth=0.8, linestyle="--")
    ax.set_title("tiny model, requests/s (target 2500)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bars(ax: Any, rows: list[dict[str, Any]], *series: tuple[str, str]) -> None:
    """A group of bars per row, side by side: the figure under each series' key, labelled."""
    width = 0.8 / len(series)
    for n, (key, label) in enumerate(series):
        offset = (n - (len(series) - 1) / 2) * width
        ax.bar([i + offset for i in range(len(rows))], [r[key] for r in rows], width, label=label)


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
        "| boundary | per hop ms | raw gRPC round trip ms | vs raw | bare grpc.aio hop ms | vs bare |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["per_hop"]:
        figures = (
            f"{r['per_hop_ms']:.3f} | {r['raw_grpc_round_trip_ms']:.3f} | {r['vs_raw']:.2f}x "
            f"| {r['bare_aio_hop_ms']:.3f} | {r['vs_bare_aio_hop']:.2f}x"
        )
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
    for name, key in (
        ("a worker called directly", "direct"),
        ("through the coordinator", "via_coordinator"),
        ("bare grpc.aio echo called directly", "bare_echo"),
        ("through a bare grpc.aio relay", "bare_relay"),
    ):
        f = c[key]
        out.append(f"| {name} | {f['rps']:.0f} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} |")
    out += [
        f"| added by the coordinator | | {c['added_p50_ms']:.3f} | {c['added_p99_ms']:.3f} |",
        f"| added by a bare relay | | {c['bare_added_p50_ms']:.3f} | |",
        f"| coordinator req/s vs bare relay | {c['vs_bare_relay']:.2f}x | | |",
    ]
    d = results["data_path"]
    out += [
        "",
        f"{d['model']}, 3-stage pipeline: the coordinator handles "
        f"{d['coordinator_bytes_per_request']:.0f} tensor bytes per request (inputs in, outputs out); "
        f"{d['activation_bytes_between_stages']:.0f} bytes of "
        "activations cross the stage boundaries worker to worker.",
    ]
    checked = results.get("perf_analyzer", {"skipped": "not measured"})
    if "perf_analyzer" in checked:
        out += [
            "",
            "| 2 replicas, 4 in flight, same model | req/s | p50 ms | p99 ms |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, key in (("edgeswarm bench", "edgeswarm"), ("Triton's perf_analyzer", "perf_analyzer")):
            f = checked[key]
            out.append(f"| {name} | {f['rps']:.1f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} |")
    else:
        out += ["", f"perf_analyzer: {checked['skipped']}"]
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
    out += ["", "| request, 1 replica | plaintext p50 ms | TLS p50 ms | TLS / plaintext "
            "| one more hop, plaintext ms | one more hop, TLS ms | TLS costs per hop ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in results["tls"]:
        f = r["layouts"]["replica"]
        hops = f"{r['hop_plaintext_ms']:.2f} | {r['hop_tls_ms']:.2f} | {r['tls_per_hop_ms']:.2f}"
        out.append(
            f"| {r['size']} ({r['requests']} requests) | {f['plaintext_p50_ms']:.2f} | {f['tls_p50_ms']:.2f} "
            f"| {f['ratio']:.2f}x | {hops} |"
        )
    out += _generation(results.get("generation", {"skipped": "not measured"}))
    out += [f"measured in {results['seconds']:.0f} s"]
    return "\n".join(out)


def _generation(figures: dict[str, Any]) -> list[str]:
    if "skipped" in figures:
        return ["", f"generation: {figures['skipped']}"]
    out = []
    for one in figures["decoders"]:
        out += _decoder(one)
    out += ["", "bytes a decode step sends across a boundary of 2 stages, against one token's hidden state:"]
    out += [
        f"  context {row['context']}: {row['bytes_per_step']:.0f} bytes, {row['vs_hidden']:.2f}x"
        for row in figures["hop_bytes"]
    ]
    return out


def _decoder(figures: dict[str, Any]) -> list[str]:
    model = figures["model"]
    out = ["", f"generation: tiny LLM, {model['layers']} layers, width {model['width']}; one session running "
           f"the loop: {figures['floor_ms_per_token']:.2f} ms a token",
           "| stages | ms a token | vs one session | first token of 128, ms | one session's prefill, ms |",
           "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for row in figures["pipelines"]:
        out.append(
            f"| {row['stages']} | {row['ms_per_token']:.2f} | {row['vs_floor']:.2f}x "
            f"| {row['first_token_ms']:.1f} | {row['prefill_ms']:.1f} |"
        )
    eight = figures["eight_sessions"]
    out.append(
        f"8 sessions through 2 stages: {eight['tokens_per_s']:.0f} tokens/s, {eight['vs_bound']:.2f}x "
        f"the bound of two even stages ({eight['bound_tokens_per_s']:.0f})"
    )
    return out
