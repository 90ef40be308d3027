"""The fleet as an MQTT broker sees it: workers' retained statuses, their latest telemetry, and events out.

Statuses are retained, so a coordinator that connects (or reconnects) late still hears every worker's
last word, including the Last Will of one that died. Presence only reports; health streams decide who
serves.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable

import aiomqtt

from edgeswarm.backoff import Backoff
from edgeswarm.presence.topics import (
    Payload,
    decode_status,
    decode_telemetry,
    encode_event,
    events_topic,
    parse_broker,
    status_filter,
    telemetry_filter,
    worker_of,
)
from edgeswarm.presence.worker import CALL_TIMEOUT_S

log = logging.getLogger(__name__)

EVENT_TIMEOUT_S = 2.0

OnStatus = Callable[[str, Payload], Awaitable[None] | None]


class FleetPresence:
    """Calls `on_status(worker_id, status)` for each status heard, retained ones included; keeps each
    worker's latest telemetry sample in `telemetry` until that worker goes offline."""

    def __init__(self, broker: str, fleet: str, on_status: OnStatus, keepalive: int = 5) -> None:
        self.broker = broker
        self.host, self.port = parse_broker(broker)
        self.fleet = fleet
        self.keepalive = keepalive
        self.telemetry: dict[str, Payload] = {}
        self.events_topic = events_topic(fleet)
        self._status_filter = status_filter(fleet)
        self._telemetry_filter = telemetry_filter(fleet)
        self._on_status = on_status
        self._client: aiomqtt.Client | None = None

    @property
    def connected(self) -> bool:
        """Subscribed on a live connection to the broker."""
        return self._client is not None

    async def run(self) -> None:
        """Listens until cancelled; reconnects forever when the broker goes away. An exception raised by
        `on_status` is a bug, not a lost broker: it ends `run()`."""
        backoff = Backoff()
        while True:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=f"edgeswarm-coordinator-{self.fleet}-{uuid.uuid4().hex[:8]}",
                keepalive=self.keepalive,
                timeout=CALL_TIMEOUT_S,
            )
            try:
                await self._listen(client, backoff)
            except aiomqtt.MqttError as exc:
                delay = backoff.next()
                level = logging.WARNING if delay == backoff.first else logging.DEBUG
                log.log(level, "mqtt_lost broker=%s error=%s retry_in=%.1fs", self.broker, exc, delay)
                await asyncio.sleep(delay)

    async def _listen(self, client: aiomqtt.Client, backoff: Backoff) -> None:
        """One connection: subscribe, then hand over messages until the connection breaks."""
        async with client:
            await client.subscribe([(self._status_filter, 1), (self._telemetry_filter, 0)])
            log.info("mqtt_connected broker=%s topic=%s", self.broker, self._status_filter)
            backoff.reset()
            self._client = client
            try:
                async for message in client.messages:
                    await self._receive(message)
            finally:
                self._client = None

    async def _receive(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        worker_id = worker_of(topic)
        if worker_id is None:
            return
        payload = message.payload if isinstance(message.payload, bytes | str) else b""
        if message.topic.matches(self._telemetry_filter):
            sample = decode_telemetry(payload)
            if sample is None:
                log.warning("mqtt_bad_telemetry topic=%s", topic)
            else:
                self.telemetry[worker_id] = sample
            return
        status = decode_status(payload)
        if status is None:
            # An empty retained payload is how a status is cleared; anything else is garbage.
            log.log(logging.DEBUG if not payload else logging.WARNING, "mqtt_bad_status topic=%s", topic)
            return
        if status["state"] == "offline":
            self.telemetry.pop(worker_id, None)
        result = self._on_status(worker_id, status)
        if inspect.isawaitable(result):
            await result

    async def event(self, kind: str, **fields: object) -> None:
        """Publishes `{"event": kind, **fields}` to the fleet's events topic; dropped, with a warning,
        when the broker is out of reach."""
        payload = encode_event(kind, fields)
        client = self._client
        if client is None:
            log.warning("mqtt_event_dropped broker=%s event=%s error=not connected", self.broker, kind)
            return
        try:
            await client.publish(self.events_topic, payload, qos=1, timeout=EVENT_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt_event_dropped broker=%s event=%s error=%s", self.broker, kind, exc)
