"""The main job, `edgeswarm demo`, runs end to end and finds every output bit-exact."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "demo", "--requests", "12"],
        capture_output=True,
        text=True,
        timeout=240,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "every output equals the local session bit for bit" in run.stdout
    assert "the same tokens as the local session" in run.stdout and "first token" in run.stdout
    for row in ("one ONNX Runtime session", "3 replicas", "3-stage pipeline", "worker3"):
        assert row in run.stdout
