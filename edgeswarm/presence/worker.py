"""A worker's presence on an MQTT broker: retained online/offline status, a Last Will, periodic telemetry.

The broker publishes the will ("offline", reason "lost") when the connection dies without a DISCONNECT:
a killed process, a pulled cable, a missed keepalive. `offline()` publishes its own reason first and then
disconnects cleanly, so the will is not sent. The will is registered at connect time, so its `time` is
when that connection was made; when it was lost is when the broker delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import aiomqtt

from edgeswarm.backoff import Backoff
from edgeswarm.presence.topics import (
    State,
    encode_status,
    encode_telemetry,
    parse_broker,
    status_topic,
    telemetry_topic,
)

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0

T = TypeVar("T")


async def unless_lost(client: aiomqtt.Client, work: Awaitable[T]) -> T:
    """`work`, or MqttError as soon as the connection drops.

    aiomqtt leaves a publish that is pending when the connection drops waiting out its whole timeout;
    this ends it at once. It learns of the loss from `client.messages`, so the client must subscribe to
    nothing.
    """
    task = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(anext(client.messages))
    try:
        done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        lost.cancel()
    if lost in done:
        await lost  # raises MqttError: with no subscriptions, only a lost connection ends it
    return task.result()


class WorkerPresence:
    def __init__(
        self,
        broker: str,
        fleet: str,
        worker_id: str,
        name: str,
        address: str,
        telemetry: Callable[[], Mapping[str, object]],
        interval: float = 2.0,
        keepalive: int = 5,
    ) -> None:
        self.broker = broker
        self.host, self.port = parse_broker(broker)
        self.worker_id = worker_id
        self.name = name
        self.address = address
        self.interval = interval
        self.keepalive = keepalive
        self.status_topic = status_topic(fleet, worker_id)
        self.telemetry_topic = telemetry_topic(fleet, worker_id)
        self._telemetry = telemetry
        self._reason = "drain"
        self._stopping = asyncio.Event()
        self._running = False
        self._stopped = asyncio.Event()

    def _status(self, state: State, reason: str | None = None) -> bytes:
        return encode_status(state, self.worker_id, self.name, self.address, reason)

    def _client(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self.status_topic, self._status("offline", "lost"), qos=1, retain=True)
        return aiomqtt.Client(
            self.host,
            self.port,
            # Stable, so a reconnect takes over a half-open old session instead of racing its will.
            identifier=f"edgeswarm-worker-{self.worker_id}",
            will=will,
            keepalive=self.keepalive,
            timeout=CALL_TIMEOUT_S,
        )

    async def run(self) -> None:
        """Online until `offline()`; reconnects forever when the broker goes away.

        Cancelled or failing while connected, it still says goodbye: offline with reason "stopped".
        """
        self._running = True
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    async with self._client() as client:
                        await self._session(client, backoff)
                    return
                except aiomqtt.MqttError as exc:
                    delay = backoff.next()
                    level = logging.WARNING if delay == backoff.first else logging.DEBUG
                    log.log(level, "mqtt_lost broker=%s error=%s retry_in=%.1fs", self.broker, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            self._running = False
            self._stopped.set()

    async def _session(self, client: aiomqtt.Client, backoff: Backoff) -> None:
        """One connection: online, telemetry until `offline()`, then the offline status."""
        try:
            if not self._stopping.is_set():
                online = client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
                await unless_lost(client, online)
                log.info("mqtt_connected broker=%s topic=%s", self.broker, self.status_topic)
                backoff.reset()
                await self._publish_telemetry(client)
        except aiomqtt.MqttError:
            raise
        except BaseException:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._publish_offline(client, "stopped")
            raise
        await self._publish_offline(client, self._reason)

    async def _publish_offline(self, client: aiomqtt.Client, reason: str) -> None:
        offline = client.publish(self.status_topic, self._status("offline", reason), qos=1, retain=True)
        await unless_lost(client, offline)
        log.info("mqtt_offline broker=%s topic=%s reason=%s", self.broker, self.status_topic, reason)

    async def _publish_telemetry(self, client: aiomqtt.Client) -> None:
        """A sample every `interval` seconds until `offline()`; a lost connection raises MqttError."""
        while not self._stopping.is_set():
            sample = client.publish(self.telemetry_topic, encode_telemetry(self._telemetry()), qos=0)
            await unless_lost(client, sample)
            with contextlib.suppress(TimeoutError):
                await unless_lost(client, asyncio.wait_for(self._stopping.wait(), self.interval))

    async def offline(self, reason: str = "drain", timeout: float = 2 * CALL_TIMEOUT_S) -> None:
        """Publishes a retained offline status with `reason` and disconnects cleanly, ending `run()`.

        When not connected there is nothing to tell the broker: `run()` just stops. Waits at most
        `timeout` seconds for `run()` to finish.
        """
        self._reason = reason
        self._stopping.set()
        if not self._running:
            return
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            log.warning("mqtt_offline_timeout broker=%s timeout=%.1fs", self.broker, timeout)
