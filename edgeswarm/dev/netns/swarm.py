"""An edgeswarm fleet on a `Network`: mosquitto, a coordinator and workers, each in its own host."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import onnx

from edgeswarm.client import Client, StatusReport
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import status_of, up_workers_of, wait_until
from edgeswarm.dev.mosquitto import mosquitto_binary
from edgeswarm.dev.netns.namespaces import Process
from edgeswarm.dev.netns.network import Host, Network
from edgeswarm.graph.costs import tensor_nbytes

GRPC_PORT = 50051
WORKER_PORT = 50061
MQTT_PORT = 1883


class NetFleet:
    """Processes of one fleet, one per host; `mqtt` runs a broker on a host of its own. Secure, as
    any fleet off loopback must be: the coordinator makes its CA, each worker joins with a token, and
    `client()` carries the admin's credentials."""

    def __init__(
        self,
        network: Network,
        workdir: Path,
        workers: int = 2,
        mqtt: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.network = network
        self.workdir = workdir
        self.fleet = f"net-{uuid.uuid4().hex[:6]}"
        self.env = {"PYTHONUNBUFFERED": "1", **(env or {})}
        self.broker = network.add_host("mqtt") if mqtt else None
        self.coordinator_host = network.add_host("coord")
        self.worker_hosts = {f"worker{i + 1}": network.add_host(f"worker{i + 1}") for i in range(workers)}
        self.coordinator: Process | None = None
        self.workers: dict[str, Process] = {}

    @property
    def coordinator_address(self) -> str:
        return f"{self.coordinator_host.ip}:{GRPC_PORT}"

    @property
    def mqtt_address(self) -> str:
        assert self.broker is not None
        return f"{self.broker.ip}:{MQTT_PORT}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.broker is not None:
            self.start_broker()
        self.start_coordinator()
        for name in self.worker_hosts:
            self.start_worker(name)

    def start_broker(self) -> None:
        assert self.broker is not None
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        config = self.workdir / "mosquitto.conf"
        config.write_text(f"listener {MQTT_PORT} {self.broker.ip}\nallow_anonymous true\npersistence false\n")
        self.broker.popen([binary, "-c", str(config)], self.workdir / "mosquitto.log")

    def _edgeswarm(self, host: Host, log: str, *args: str) -> Process:
        mqtt = ("--mqtt", self.mqtt_address) if self.broker is not None else ()
        argv = [
            sys.executable,
            "-m",
            "edgeswarm",
            *args,
            "--interface",
            host.ip,
            "--fleet",
            self.fleet,
            *mqtt,
        ]
        return host.popen(argv, self.workdir / f"{log}.log", env=self.env)

    @property
    def credentials(self) -> Path:
        return self.workdir / "coordinator-state" / "admin.credentials"

    def client(self) -> Client:
        return Client(self.coordinator_address, credentials=self.credentials)

    def start_coordinator(self) -> None:
        host = self.coordinator_host
        self.credentials.unlink(missing_ok=True)  # rewritten once the coordinator is bound
        self.coordinator = self._edgeswarm(
            host, "coordinator", "coordinator", "--listen", self.coordinator_address,
            "--state-dir", str(self.workdir / "coordinator-state"),
        )  # fmt: skip

    def start_worker(self, name: str) -> None:
        host = self.worker_hosts[name]
        state = self.workdir / f"{name}-state"
        join = () if (state / "worker.pem").is_file() else ("--join", self._worker_token())
        self.workers[name] = self._edgeswarm(
            host,
            name,
            "worker",
            "--listen", f"{host.ip}:{WORKER_PORT}",
            "--name", name,
            "--cache-dir", str(self.workdir / name),
            "--threads", "1",
            "--state-dir", str(state),
            *join,
        )  # fmt: skip

    def _worker_token(self) -> str:
        credentials = self.credentials
        wait_until(credentials.is_file, 30, "the coordinator's credentials")
        with Client(credentials=credentials) as client:
            token, _ = client.create_token("worker", description=f"netns fleet {self.fleet}")
        return token

    def status(self) -> StatusReport:
        return status_of(self.coordinator_address, self.credentials)

    def up_workers(self) -> set[str]:
        if not self.credentials.is_file():
            return set()
        return up_workers_of(self.coordinator_address, self.credentials)

    def wait_ready(self, timeout: float = 60.0) -> None:
        want = len(self.worker_hosts)
        wait_until(lambda: len(self.up_workers()) >= want, timeout, f"{want} workers up")

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def pipeline_encoder(directory: Path) -> tuple[onnx.ModelProto, Path, dict[str, str]]:
    """A 4-layer d_model 384 encoder (~28 MB) saved in `directory`, and the workers' environment that
    lets none hold more than 60% of its weights: any plan is a pipeline, any two workers hold it."""
    model = zoo.transformer_encoder(layers=4, d_model=384, heads=6, d_ff=1536, seq=64)
    path = directory / "encoder.onnx"
    onnx.save(model, str(path))
    weights = sum(tensor_nbytes(i) for i in model.graph.initializer)
    return model, path, {"EDGESWARM_WORKER_MEMORY_LIMIT": str(int(weights * 0.6))}
