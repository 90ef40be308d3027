"""What the harness's network and cgroup parts share: its error, signals to processes, and writing
one value to a kernel file (a cgroup's or a sysctl's)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

KILL_TIMEOUT = 5.0


class FleetError(RuntimeError):
    """The harness could not set up, change or tear down part of a network."""


def send_signal(pids: Iterable[int], sig: signal.Signals) -> None:
    """Sends `sig` to each pid, skipping those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_all(pids: set[int]) -> None:
    """SIGCONT, so that stopped processes can die, then SIGKILL."""
    send_signal(pids, signal.SIGCONT)
    send_signal(pids, signal.SIGKILL)


def write(path: Path, value: object) -> None:
    """Writes one value to a kernel file (cgroup, sysctl); FleetError naming the file when refused."""
    logger.debug("write %s > %s", value, path)
    try:
        path.write_text(f"{value}\n")
    except OSError as e:
        raise FleetError(f"cannot write {value!r} to {path}: {e}") from e
