"""Deploying a ~3 GiB model kept in external data as a 4-stage pipeline: seconds and MB/s end to end,
against this machine's own sequential copy of the same bytes (the physical bound), and the peak
resident memory of the CLI, the coordinator and each worker as a ratio to the largest stage.

    python bench/deploy_big.py [--layers 12] [--width 8192]

The bytes go CLI (read) -> coordinator store (write) -> its stage files (read, write) -> each worker's
cache (write): three writes of the model on one disk here, where a fleet spreads the last over its
PCs. The copy is timed on the same file, once, after the deploy (both from the page cache, as far as
it holds them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from edgeswarm.client import Client
from edgeswarm.dev.bigmodel import deploy_measured, memory_of, write_big_mlp
from edgeswarm.dev.localfleet import LocalFleet

MIB = 1024 * 1024


def copy_seconds(source: Path, target: Path) -> float:
    start = time.perf_counter()
    shutil.copyfile(source, target)
    with target.open("rb+") as f:
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=8192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeswarm-deploy-bench-") as tmp:
        root = Path(tmp)
        path = root / "model" / "big.onnx"
        path.parent.mkdir()
        size = write_big_mlp(path, layers=args.layers, width=args.width)
        total = path.stat().st_size + path.with_suffix(".data").stat().st_size
        with LocalFleet(root / "fleet", workers=4) as fleet:
            fleet.wait_ready(timeout=120)
            assert fleet.coordinator is not None
            coordinator_before = memory_of(fleet.coordinator.pid)["VmRSS"]
            cli = deploy_measured(
                path, fleet.coordinator_address, "--name", "big", "--mode", "pipeline", "--stages", "4"
            )
            coordinator = memory_of(fleet.coordinator.pid)
            workers = {name: memory_of(p.pid) for name, p in fleet.workers.items()}
            with Client(fleet.coordinator_address) as client:
                (model,) = client.status().models
            largest = max(s.size for s in model.stages)
        copy = copy_seconds(path.with_suffix(".data"), root / "copy.data")
    deploy_mbps = total / MIB / cli["seconds"]
    copy_mbps = total / MIB / copy
    print(
        f"model: {size / MIB:.0f} MiB of weights in {args.layers} layers, {total / MIB:.0f} MiB of files; "
        f"4 stages, largest {largest / MIB:.0f} MiB\n"
    )
    row("", "seconds", "MB/s", "vs. copy")
    row("---", "---:", "---:", "---:")
    row("`edgeswarm deploy` (CLI start to ready)", f"{cli['seconds']:.1f}", f"{deploy_mbps:.0f}",
        f"{deploy_mbps / copy_mbps:.2f}x")  # fmt: skip
    row("sequential copy of the same bytes (+fsync)", f"{copy:.1f}", f"{copy_mbps:.0f}", "1.00x")
    print()
    row("process", "RSS before", "peak RSS", "peak / largest stage")
    row("---", "---:", "---:", "---:")
    peaks = [("CLI", cli["rss_before"], cli["hwm_after"]),
             ("coordinator", coordinator_before, coordinator["VmHWM"])]  # fmt: skip
    peaks += [(name, 0, memory["VmHWM"]) for name, memory in sorted(workers.items())]
    for name, before, peak in peaks:
        row(
            name,
            f"{before / MIB:.0f} MiB" if before else "",
            f"{peak / MIB:.0f} MiB",
            f"{peak / largest:.2f}",
        )


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
