"""MQTT presence across the fleet's network: a real Mosquitto on a host of its own."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import onnx
import pytest

from edgeswarm.dev import zoo
from edgeswarm.dev.mosquitto import Received, listen, mosquitto_unavailable
from edgeswarm.dev.netns.network import Network
from edgeswarm.dev.netns.swarm import NetFleet

pytestmark = pytest.mark.fleet


def status_is(worker_id: str, state: str, reason: str | None = None):  # type: ignore[no-untyped-def]
    def match(message: Received) -> bool:
        if not message.topic.endswith(f"/workers/{worker_id}/status"):
            return False
        payload = json.loads(message.payload or b"{}")
        return payload.get("state") == state and (reason is None or payload.get("reason") == reason)

    return match


def event_is(kind: str, **fields: object):  # type: ignore[no-untyped-def]
    def match(message: Received) -> bool:
        if not message.topic.endswith("/events"):
            return False
        payload = json.loads(message.payload)
        return payload.get("event") == kind and all(payload.get(k) == v for k, v in fields.items())

    return match


async def test_status_topics_follow_a_kill_and_a_drain(network: Network, tmp_path: Path) -> None:
    if (reason := mosquitto_unavailable()) is not None:
        from tests.helpers import skip_or_fail

        skip_or_fail(reason)
    fleet = NetFleet(network, tmp_path / "fleet", workers=2)
    fleet.start()
    await asyncio.to_thread(fleet.wait_ready)
    ids = {w.name: w.id for w in (await asyncio.to_thread(fleet.status)).workers}
    model = tmp_path / "mlp.onnx"
    onnx.save(zoo.mlp(layers=4, width=32, in_features=16, out_features=4), str(model))

    async with listen(fleet.mqtt_address, f"edgeswarm/{fleet.fleet}/#") as heard:
        for worker_id in ids.values():
            await heard.wait_for(status_is(worker_id, "online"), 10, "retained online statuses")
        await heard.wait_for(lambda m: m.topic.endswith(f"{ids['worker1']}/telemetry"), 10, "telemetry")

        def deploy() -> None:
            with fleet.client() as client:
                client.deploy(model, "mlp", mode="replicas", replicas=2, timeout=60)

        await asyncio.to_thread(deploy)
        await heard.wait_for(event_is("plan_changed", model="mlp", version=1), 10, "a plan_changed event")

        fleet.worker_hosts["worker1"].kill()
        await heard.wait_for(status_is(ids["worker1"], "offline", "lost"), 5, "worker1's Last Will")
        await heard.wait_for(event_is("left", id=ids["worker1"]), 5, "a left event for worker1")

        fleet.workers["worker2"].send_signal(signal.SIGTERM)
        await heard.wait_for(status_is(ids["worker2"], "offline", "drain"), 10, "worker2's own offline")
        assert await asyncio.to_thread(fleet.workers["worker2"].wait, 30) == 0
    # The drain said goodbye itself: the broker never sent worker2's will.
    assert not any(status_is(ids["worker2"], "offline", "lost")(m) for m in heard.messages)
    assert "mqtt_connected" in fleet.log("coordinator")
