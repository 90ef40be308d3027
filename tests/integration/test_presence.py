"""Presence over a real mosquitto: the Last Will of a killed worker, a drained worker's goodbye,
telemetry, retained statuses for a late coordinator, a broker restart, events with no broker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeswarm.dev.localfleet import free_port
from edgeswarm.dev.mosquitto import Mosquitto, Received, listen, mosquitto_unavailable, publish
from edgeswarm.presence.fleet import FleetPresence
from edgeswarm.presence.topics import (
    Payload,
    decode_event,
    decode_status,
    decode_telemetry,
    encode_status,
    events_topic,
    status_topic,
    telemetry_topic,
)
from edgeswarm.presence.worker import WorkerPresence

pytestmark = pytest.mark.integration

Process = subprocess.Popen[bytes]
ROOT = Path(__file__).resolve().parents[2]
KEEPALIVE = 1
INTERVAL = 0.2
# mosquitto 2.0.11 looks for silent clients only every 5 whole seconds (keepalive__check), so a frozen
# worker is declared lost after keepalive * 1.5 plus up to about 6 s; a closed socket, at once.
BROKER_KEEPALIVE_SWEEP_S = 6
TIMEOUT = 10.0  # generous bound on waits that normally take well under a second


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    reason = mosquitto_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with Mosquitto(workdir=tmp_path) as running:
        yield running


@pytest.fixture
def fleet() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spawn(
    tmp_path: Path, broker: Mosquitto, fleet: str
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Starts `tests.presence_worker` processes; any still running are killed when the test ends."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(worker_id: str) -> subprocess.Popen[bytes]:
        args = [broker.address, fleet, worker_id, "--interval", str(INTERVAL), "--keepalive", str(KEEPALIVE)]
        with open(tmp_path / f"{worker_id}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.presence_worker", *args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """`coro` as a task for the body of the block; cancelled after, and its failure, if any, raised."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def status(state: str, reason: str | None = None) -> Callable[[Received], bool]:
    def match(message: Received) -> bool:
        got = decode_status(message.payload)
        return got is not None and got["state"] == state and got.get("reason") == reason

    return match


def sample(n: int = 0) -> dict[str, float]:
    return {"in_flight": 1, "requests_per_s": 2.5, "stage_ms": 3.0, "memory_available": 1 << 30, "n": n}


def worker(
    broker: Mosquitto, fleet: str, worker_id: str, telemetry: Callable[[], Any] = sample
) -> WorkerPresence:
    return WorkerPresence(
        broker.address,
        fleet,
        worker_id,
        "w",
        "127.0.0.1:1",
        telemetry,
        interval=INTERVAL,
        keepalive=KEEPALIVE,
    )


class Statuses:
    """An `on_status` that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Payload]] = []

    async def __call__(self, worker_id: str, payload: Payload) -> None:
        self.calls.append((worker_id, payload))

    def seen(self, worker_id: str, state: str, since: int = 0) -> bool:
        return any(w == worker_id and p["state"] == state for w, p in self.calls[since:])


async def test_kill_9_publishes_the_last_will(broker: Mosquitto, fleet: str, spawn: Any) -> None:
    async with listen(broker.address, status_topic(fleet, "w1")) as heard:
        process = spawn("w1")
        online = await heard.wait_for(status("online"), TIMEOUT, "online")
        assert online.retain is False  # a live subscriber gets it as published
        process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        lost = await heard.wait_for(status("offline", "lost"), KEEPALIVE * 1.5 + 2, "the will")
    assert lost.at - killed < KEEPALIVE * 1.5 + 0.5
    will = decode_status(lost.payload)
    assert will is not None and will["id"] == "w1" and will["address"] == "127.0.0.1:0"
    async with listen(broker.address, status_topic(fleet, "w1")) as late:
        retained = await late.wait_for(lambda m: m.retain, TIMEOUT, "the retained status")
    assert status("offline", "lost")(retained)


async def test_a_frozen_worker_is_lost_after_keepalive_then_comes_back(
    broker: Mosquitto, fleet: str, spawn: Any
) -> None:
    async with listen(broker.address, status_topic(fleet, "w1")) as heard:
        process = spawn("w1")
        await heard.wait_for(status("online"), TIMEOUT, "online")
        process.send_signal(signal.SIGSTOP)  # the socket stays open; only the keepalive can tell
        frozen = time.monotonic()
        bound = KEEPALIVE * 1.5 + BROKER_KEEPALIVE_SWEEP_S + 1
        lost = await heard.wait_for(status("offline", "lost"), bound, "the will")
        assert KEEPALIVE <= lost.at - frozen < bound
        process.send_signal(signal.SIGCONT)
        await heard.wait_for(lambda m: m.at > lost.at and status("online")(m), TIMEOUT, "online again")


async def test_sigterm_drains_without_the_will(broker: Mosquitto, fleet: str, spawn: Any) -> None:
    async with listen(broker.address, status_topic(fleet, "w1")) as heard:
        process = spawn("w1")
        await heard.wait_for(status("online"), TIMEOUT, "online")
        process.send_signal(signal.SIGTERM)
        await heard.wait_for(status("offline", "drain"), TIMEOUT, "offline drain")
        assert await asyncio.to_thread(process.wait, TIMEOUT) == 0
    assert [decode_status(m.payload)["state"] for m in heard.messages] == ["online", "offline"]  # type: ignore[index]
    async with listen(broker.address, status_topic(fleet, "w1")) as late:
        retained = await late.wait_for(lambda m: m.retain, TIMEOUT, "the retained status")
    assert status("offline", "drain")(retained)


async def test_telemetry_every_interval_and_the_latest_kept(broker: Mosquitto, fleet: str) -> None:
    count = 0

    def telemetry() -> dict[str, float]:
        nonlocal count
        count += 1
        return sample(count)

    statuses = Statuses()
    presence = FleetPresence(broker.address, fleet, statuses, keepalive=KEEPALIVE)
    async with (
        listen(broker.address, telemetry_topic(fleet, "w1")) as heard,
        running(presence.run()),
        running(worker(broker, fleet, "w1", telemetry).run()),
    ):
        sixth = await heard.wait_for(lambda m: decode_telemetry(m.payload)["n"] >= 6, TIMEOUT, "6 samples")  # type: ignore[index]
        await until(lambda: presence.telemetry.get("w1", {}).get("n", 0) >= 6, "the fleet to hold sample 6")
        latest = presence.telemetry["w1"]
    arrivals = [m.at for m in heard.messages if m.at <= sixth.at]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(gaps) >= 4
    assert INTERVAL * 0.5 < sum(gaps) / len(gaps) < INTERVAL * 2
    assert latest["n"] >= 6 and latest["stage_ms"] == 3.0 and latest["memory_available"] == 1 << 30
    assert isinstance(latest["time"], float)
    assert statuses.seen("w1", "online")


async def test_a_late_fleet_hears_retained_statuses(broker: Mosquitto, fleet: str) -> None:
    offline = encode_status("offline", "w1", "w", "127.0.0.1:1", reason="lost")
    await publish(broker.address, status_topic(fleet, "w1"), offline, retain=True)
    await publish(broker.address, status_topic(fleet, "w2"), b"\xff not json", retain=True)
    calls: list[tuple[str, Payload]] = []
    presence = FleetPresence(broker.address, fleet, lambda w, p: calls.append((w, p)), keepalive=KEEPALIVE)
    async with running(presence.run()):
        await until(lambda: bool(calls), "on_status for the retained status")
        await publish(broker.address, status_topic(fleet, "w3"), encode_status("online", "w3", "c", "x:1"))
        await until(lambda: len(calls) == 2, "on_status for w3")
    assert [(w, p["state"], p.get("reason")) for w, p in calls] == [
        ("w1", "offline", "lost"),
        ("w3", "online", None),
    ]


async def test_both_sides_survive_a_broker_restart(broker: Mosquitto, fleet: str) -> None:
    statuses = Statuses()
    presence = FleetPresence(broker.address, fleet, statuses, keepalive=KEEPALIVE)
    async with running(presence.run()), running(worker(broker, fleet, "w1").run()):
        await until(lambda: statuses.seen("w1", "online"), "w1 online")
        before = len(statuses.calls)
        started = time.monotonic()
        await asyncio.to_thread(broker.restart)  # the new broker has no retained statuses
        # Only a worker that reconnected and a fleet that resubscribed bring "online" back.
        await until(lambda: statuses.seen("w1", "online", since=before), "w1 online again")
        await until(lambda: presence.telemetry.get("w1") is not None, "telemetry again")
        recovered = time.monotonic() - started
        late = encode_status("online", "w2", "w", "127.0.0.1:2")
        await publish(broker.address, status_topic(fleet, "w2"), late, retain=True)
        await until(lambda: statuses.seen("w2", "online"), "a status published after the restart")
    assert recovered < 3.0


async def test_cancelled_worker_says_stopped(broker: Mosquitto, fleet: str) -> None:
    async with listen(broker.address, status_topic(fleet, "w1")) as heard:
        async with running(worker(broker, fleet, "w1").run()):
            await heard.wait_for(status("online"), TIMEOUT, "online")
        await heard.wait_for(status("offline", "stopped"), TIMEOUT, "offline stopped")


async def test_events_reach_subscribers(broker: Mosquitto, fleet: str) -> None:
    presence = FleetPresence(broker.address, fleet, lambda w, p: None, keepalive=KEEPALIVE)
    async with listen(broker.address, events_topic(fleet)) as heard, running(presence.run()):
        await until(lambda: presence.connected, "the fleet to connect")
        await presence.event("plan_changed", model="enc", version=3)
        got = await heard.wait_for(lambda m: True, TIMEOUT, "the event")
    event = decode_event(got.payload)
    assert event is not None and event["event"] == "plan_changed" and event["version"] == 3
    assert got.retain is False


async def test_event_with_no_broker_is_dropped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeswarm")
    presence = FleetPresence(f"127.0.0.1:{free_port()}", "nobroker", lambda w, p: None, keepalive=KEEPALIVE)
    await presence.event("joined", worker="w1")
    async with running(presence.run()) as task:
        await until(lambda: "mqtt_lost" in caplog.text, "a failed connection")
        await presence.event("left", worker="w1")
        assert not task.done() and not presence.connected
    assert caplog.text.count("mqtt_event_dropped") == 2


async def test_offline_with_no_broker_just_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="edgeswarm")
    presence = WorkerPresence(f"127.0.0.1:{free_port()}", "nobroker", "w1", "w", "x:1", sample, keepalive=1)
    await asyncio.wait_for(presence.offline(), TIMEOUT)  # never ran
    retrying = WorkerPresence(f"127.0.0.1:{free_port()}", "nobroker", "w2", "w", "x:1", sample, keepalive=1)
    async with running(retrying.run()) as task:
        await until(lambda: "mqtt_lost" in caplog.text, "a failed connection")
        started = time.monotonic()
        await asyncio.wait_for(retrying.offline(), TIMEOUT)
        assert time.monotonic() - started < 0.25  # woken from its backoff, not waiting it out
        assert task.done() and task.exception() is None
