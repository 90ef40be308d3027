"""A real Prometheus on 127.0.0.1 scraping processes of a test fleet, and PromQL queries against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeswarm.dev.localfleet import LOOPBACK, free_port, wait_until

START_TIMEOUT_S = 30.0


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def prometheus_unavailable() -> str | None:
    """Why no Prometheus can be started here, or None when one can."""
    if prometheus_binary() is None:
        return "prometheus is not installed (apt-get install prometheus)"
    return None


class Prometheus:
    """`with Prometheus(targets) as prometheus:` scraping each HOST:PORT of `targets` every
    `interval` seconds; `query(expr)` evaluates PromQL now."""

    def __init__(self, targets: Sequence[str], interval: float = 1.0, workdir: Path | None = None) -> None:
        self.targets = list(targets)
        self.interval = interval
        self.port = free_port()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        every = f"{round(1000 * self.interval)}ms"  # Prometheus durations take whole units
        config.write_text(
            json.dumps(
                {
                    "global": {
                        "scrape_interval": every,
                        "evaluation_interval": every,
                    },
                    "scrape_configs": [
                        {"job_name": "edgeswarm", "static_configs": [{"targets": self.targets}]}
                    ],
                }
            )
        )
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus")
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address={LOOPBACK}:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until(self._ready, START_TIMEOUT_S, "prometheus to be ready")
        except TimeoutError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as answer:
            return json.loads(answer.read())

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def targets_up(self) -> bool:
        active = self._get("/api/v1/targets")["data"]["activeTargets"]
        return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` gives now (a list of {metric, value})."""
        answer = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result
