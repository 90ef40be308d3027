"""A coordinator and workers as real processes on this machine, on 127.0.0.1: for the demo and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from edgeswarm.client import Client, StatusReport
from edgeswarm.errors import EdgeswarmError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls `condition` until it holds; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def status_of(coordinator: str, credentials: Path | None = None) -> StatusReport:
    with Client(coordinator, credentials=credentials) as client:
        return client.status(timeout=2.0)


def up_workers_of(coordinator: str, credentials: Path | None = None) -> set[str]:
    """Names of the workers the coordinator at `coordinator` counts as up; none if it does not answer."""
    try:
        report = status_of(coordinator, credentials)
    except EdgeswarmError:
        return set()
    return {w.name for w in report.workers if w.state == "up"}


class LocalFleet:
    """Processes of one fleet; a unique fleet name keeps it apart from any other on the same loopback.

    `secure=False` (the tests' default) runs every process --insecure: plaintext on 127.0.0.1. With
    `secure=True` the coordinator makes its fleet CA, each worker joins with a worker token, and
    `credentials` is the admin's credentials file for clients."""

    def __init__(
        self,
        workdir: Path,
        workers: int = 3,
        threads: int = 1,
        fleet: str | None = None,
        coordinator_args: tuple[str, ...] = (),
        worker_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        secure: bool = False,
    ) -> None:
        self.workdir = workdir
        self.secure = secure
        self.coordinator_args = coordinator_args
        self.worker_args = worker_args
        # Extra environment of every process: EDGESWARM_* settings such as short protocol timers.
        self.env = dict(env or {})
        self.fleet = fleet or f"local-{uuid.uuid4().hex[:8]}"
        self.threads = threads
        self.worker_count = workers
        self.coordinator_address = f"{LOOPBACK}:{free_port()}"
        self.coordinator: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.worker_addresses: dict[str, str] = {}

    def __enter__(self) -> LocalFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with log:
            return subprocess.Popen(
                [sys.executable, "-m", "edgeswarm", *args], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_coordinator()
        for i in range(self.worker_count):
            self.start_worker(f"worker{i + 1}")

    @property
    def credentials(self) -> Path | None:
        """The admin's credentials file of a secure fleet; None for an insecure one."""
        return self.workdir / "coordinator-state" / "admin.credentials" if self.secure else None

    def start_coordinator(self) -> None:
        if self.credentials is not None:
            self.credentials.unlink(missing_ok=True)  # rewritten, with this start's address, once bound
        self.coordinator = self._spawn(
            "coordinator",
            "coordinator",
            "--listen", self.coordinator_address,
            "--interface", LOOPBACK,
            "--fleet", self.fleet,
            "--state-dir", str(self.workdir / "coordinator-state"),
            *(() if self.secure else ("--insecure",)),
            *self.coordinator_args,
        )  # fmt: skip

    def worker_token(self) -> str:
        """A new worker join token from the coordinator (secure fleets)."""
        assert self.credentials is not None
        credentials = self.credentials
        wait_until(lambda: self._check_alive() and credentials.is_file(), 30, "the coordinator's credentials")
        with Client(credentials=credentials) as client:
            token, _ = client.create_token("worker", description="local fleet")
        return token

    def kill_coordinator(self) -> None:
        if self.coordinator is not None:
            self.coordinator.kill()
            self.coordinator.wait(timeout=10)
            self.coordinator = None

    def start_worker(self, name: str, *args: str) -> None:
        """Starts worker `name` with the fleet's worker_args and then `args`."""
        address = self.worker_addresses.get(name) or f"{LOOPBACK}:{free_port()}"
        self.worker_addresses[name] = address
        state = self.workdir / f"{name}-state"
        if not self.secure:
            security: tuple[str, ...] = ("--insecure",)
        elif (state / "worker.pem").is_file():
            security = ("--state-dir", str(state))  # joined before: no token again
        else:
            security = ("--state-dir", str(state), "--join", self.worker_token())
        self.workers[name] = self._spawn(
            name,
            "worker",
            "--listen", address,
            "--interface", LOOPBACK,
            "--fleet", self.fleet,
            "--name", name,
            "--cache-dir", str(self.workdir / name),
            "--threads", str(self.threads),
            *security,
            *self.worker_args,
            *args,
        )  # fmt: skip

    def client(self) -> Client:
        """A client of this fleet's coordinator, with the admin's credentials when it is secure."""
        return Client(self.coordinator_address, credentials=self.credentials)

    def status(self) -> StatusReport:
        return status_of(self.coordinator_address, self.credentials)

    def up_workers(self) -> set[str]:
        if self.credentials is not None and not self.credentials.is_file():
            return set()
        return up_workers_of(self.coordinator_address, self.credentials)

    def wait_ready(self, workers: int | None = None, timeout: float = 60.0) -> None:
        want = self.worker_count if workers is None else workers
        self._check_alive()
        try:
            wait_until(
                lambda: self._check_alive() and len(self.up_workers()) >= want, timeout, f"{want} workers up"
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {self._not_up()}") from None

    def _not_up(self) -> str:
        """What became of the workers the coordinator does not count as up: exit status, log's end."""
        up = self.up_workers()
        lines = [f"up: {', '.join(sorted(up)) or 'none'}"]
        for name, process in self.workers.items():
            if name not in up:
                state = "running" if process.poll() is None else f"exited with {process.returncode}"
                lines.append(f"{name} ({state}), its log ends:\n{self.log(name)[-1500:]}")
        lines.append(f"coordinator log ends:\n{self.log('coordinator')[-3000:]}")
        return "\n".join(lines)

    def _check_alive(self) -> bool:
        if self.coordinator is not None and self.coordinator.poll() is not None:
            raise RuntimeError(
                f"coordinator exited with {self.coordinator.returncode}: {self.log('coordinator')[-4000:]}"
            )
        return True

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal_worker(self, name: str, sig: int) -> None:
        self.workers[name].send_signal(sig)

    def kill_worker(self, name: str) -> None:
        process = self.workers.pop(name)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        processes = [*self.workers.values(), *([self.coordinator] if self.coordinator else [])]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a frozen process must run to hear SIGTERM
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.workers.clear()
        self.coordinator = None
