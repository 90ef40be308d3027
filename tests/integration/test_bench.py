"""`edgeswarm bench --quick` as a smoke test: the figures, the JSON and the chart are produced. It never
checks that a figure meets a target: timed assertions do not belong in tests on shared machines."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_bench_quick_produces_every_figure(tmp_path: Path) -> None:
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    done = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "bench", "--quick", "--json", str(out), "--chart", str(chart)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    figures = [
        *(f["vs_ort"] for row in results["latency"] for f in row["layouts"].values()),
        *(r["vs_raw"] for r in results["per_hop"]),
        *(r["vs_bound"] for r in results["throughput"]),
        *(r["vs_cpu_bound"] for r in results["throughput"]),
        results["coordinator"]["via_coordinator"]["rps"],
        results["coordinator"]["direct"]["rps"],
        results["data_path"]["coordinator_bytes_per_request"],
        results["coordinator"]["bare_relay"]["rps"],
        results["coordinator"]["vs_bare_relay"],
    ]
    assert len(figures) == 3 + 3 + 3 + 3 + 2 + 1 + 2
    assert all(math.isfinite(f) and f > 0 for f in figures)
    # A difference of two timings: finite, though on a noisy machine not necessarily positive.
    assert all(math.isfinite(r["bare_aio_hop_ms"]) for r in results["per_hop"])
    assert chart.stat().st_size > 10_000 and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tiny model |" in done.stdout
    # What TLS costs, per request size: plaintext and TLS p50 through each layout, from two fleets.
    tls = results["tls"]
    assert [r["size"] for r in tls] == ["8 KiB", "400 KiB", "4 MiB"]
    p50s = [f[key] for r in tls for f in r["layouts"].values() for key in ("plaintext_p50_ms", "tls_p50_ms")]
    assert len(p50s) == 3 * 2 * 2
    assert all(math.isfinite(f) and f > 0 for f in p50s)
    differences = ("hop_plaintext_ms", "hop_tls_ms", "tls_per_hop_ms", "tls_per_request_ms")
    assert all(math.isfinite(r[key]) for r in tls for key in differences)  # of timings: not always > 0
    assert "| request, 1 replica |" in done.stdout
    assert results["generation"] == {"skipped": "not in --quick"}  # its figures: the full run only
    checked = results["perf_analyzer"]
    assert "skipped" not in checked or os.environ.get("CI") != "true", checked  # CI installs what it needs
    if "skipped" not in checked:  # Triton's load generator measured the same load beside ours
        assert all(checked[side]["rps"] > 0 for side in ("edgeswarm", "perf_analyzer"))
        assert "| Triton's perf_analyzer |" in done.stdout
