"""Triton's load generator, perf_analyzer, run against the coordinator as an operator would run it.

The binary comes with the tritonclient wheel (next to this Python); it needs Debian's libb64-0d and
the CUDA runtime library of the nvidia-cuda-runtime-cu12 wheel, though no GPU is used.
"""

from __future__ import annotations

import csv
import ctypes.util
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figures:
    """One concurrency level as perf_analyzer measured it: inferences/s and client latencies."""

    concurrency: int
    inferences_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


def binary() -> Path | None:
    """perf_analyzer beside this interpreter, or on PATH; None where the wheel ships none."""
    beside = Path(sys.executable).parent / "perf_analyzer"
    if beside.exists():
        return beside
    found = shutil.which("perf_analyzer")
    return Path(found) if found else None


def _cudart_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("nvidia.cuda_runtime")
    except ModuleNotFoundError:
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "lib"
        if any(folder.glob("libcudart.so.12*")):
            return folder
    return None


def environment() -> dict[str, str]:
    """This process's environment with the CUDA runtime's folder on LD_LIBRARY_PATH."""
    env = dict(os.environ)
    folder = _cudart_dir()
    if folder is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(folder), env.get("LD_LIBRARY_PATH")]))
    return env


def unavailable() -> str | None:
    """None when perf_analyzer can run here; else what is missing."""
    path = binary()
    if path is None:
        return "no perf_analyzer binary (the tritonclient wheel has none for this platform)"
    if (
        ctypes.util.find_library("b64") is None
        and not Path("/usr/lib/x86_64-linux-gnu/libb64.so.0d").exists()
    ):
        return "libb64.so.0d is missing (Debian package libb64-0d)"
    if _cudart_dir() is None:
        return "libcudart.so.12 is missing (pip package nvidia-cuda-runtime-cu12)"
    return None


def run(
    address: str,
    model: str,
    concurrency: int = 2,
    batch: int = 1,
    shapes: dict[str, list[int]] | None = None,
    interval_ms: int = 1500,
    timeout: float = 300.0,
) -> tuple[Figures, str]:
    """Runs perf_analyzer over gRPC at one concurrency; its figures and its report as printed.

    Stability is not required (a shared 2-core machine rarely gives three windows within 10%): the
    figures are those of the last windows measured."""
    path = binary()
    if path is None:
        raise FileNotFoundError("perf_analyzer")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "figures.csv"
        argv = [str(path), "-m", model, "-i", "grpc", "-u", address, "-b", str(batch),
                "--concurrency-range", str(concurrency), "--measurement-interval", str(interval_ms),
                "--stability-percentage", "1000", "--max-trials", "3", "-f", str(report)]  # fmt: skip
        for name, dims in (shapes or {}).items():
            argv += ["--shape", f"{name}:{','.join(map(str, dims))}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=environment())
        if done.returncode != 0:
            raise RuntimeError(
                f"perf_analyzer exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        with report.open() as f:
            row = next(csv.DictReader(f))
    figures = Figures(
        concurrency=int(row["Concurrency"]),
        inferences_per_s=float(row["Inferences/Second"]),
        p50_ms=float(row["p50 latency"]) / 1000,
        p90_ms=float(row["p90 latency"]) / 1000,
        p99_ms=float(row["p99 latency"]) / 1000,
    )
    return figures, done.stdout
