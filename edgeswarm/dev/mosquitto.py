"""A real mosquitto on 127.0.0.1 for the presence tests, and a subscriber that records what it hears."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from edgeswarm.dev.localfleet import LOOPBACK, free_port
from edgeswarm.presence.topics import parse_broker

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def mosquitto_unavailable() -> str | None:
    """Why no broker can be started here, or None when one can."""
    if mosquitto_binary() is None:
        return "mosquitto is not installed (apt-get install mosquitto)"
    return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """`with Mosquitto() as broker:` a broker on `broker.address`; `port=` reuses one, for a restart."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.log_path = self.workdir / f"mosquitto-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> Path:
        path = self.workdir / f"mosquitto-{self.port}.conf"
        path.write_text(
            f"listener {self.port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # Run as root, mosquitto drops to its own user unless told to stay.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        return path

    def start(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"mosquitto-{self.port}.out", "ab") as out:
            self.process = subprocess.Popen(
                [binary, "-c", str(self._config())], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"mosquitto not listening on {self.address} after {START_TIMEOUT_S}s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """A new broker on the same port: clients lose their connections and every retained message."""
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() when it arrived


class Listener:
    """Everything published to one topic filter since subscribing, retained messages included."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._changed = asyncio.Condition()

    async def _add(self, message: Received) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for(self, match: Callable[[Received], bool], timeout: float, what: str) -> Received:
        """The first message, already here or still to come, for which `match` holds."""

        def found() -> Received | None:
            return next((m for m in self.messages if match(m)), None)

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            heard = "\n".join(f"  {m.topic} {m.payload!r}" for m in self.messages) or "  nothing"
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; heard:\n{heard}") from None
        result = found()
        assert result is not None
        return result


@contextlib.asynccontextmanager
async def listen(address: str, topic_filter: str) -> AsyncIterator[Listener]:
    """Subscribes (QoS 1) to `topic_filter` on the broker at `address` for the body of the block."""
    host, port = parse_broker(address)
    listener = Listener()
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic_filter, qos=1)

        async def pump() -> None:
            with contextlib.suppress(aiomqtt.MqttError):  # the broker went away: nothing more to hear
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    received = Received(message.topic.value, payload, message.retain, time.monotonic())
                    await listener._add(received)

        task = asyncio.create_task(pump())
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def publish(address: str, topic: str, payload: bytes, retain: bool = False, **kwargs: Any) -> None:
    """One message from a short-lived client, as a stand-in for some other publisher."""
    host, port = parse_broker(address)
    async with aiomqtt.Client(host, port) as client:
        await client.publish(topic, payload, qos=1, retain=retain, **kwargs)
