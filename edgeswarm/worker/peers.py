"""The channels a worker keeps to the workers downstream of it, one per address, reused."""

from __future__ import annotations

import grpc

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.channels import open_channel
from edgeswarm.security.pki import is_worker_id, worker_dns

RUN_STAGE = "/edgeswarm.v1.Worker/RunStage"


class Peers:
    """One channel per downstream worker address, reused across requests."""

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}
        self._channels: list[grpc.aio.Channel] = []

    def run_stage(self, address: str, worker_id: str = "") -> grpc.aio.UnaryUnaryMultiCallable:
        """RunStage on the worker at `address`, its answer left as the bytes that came: a stage only
        relays the answer of the next one, so it need not parse and rebuild it. Over TLS, the worker
        there must hold the certificate of `worker_id`."""
        key = f"{worker_id}@{address}"
        call = self._calls.get(key)
        if call is None:
            name = worker_dns(worker_id) if is_worker_id(worker_id) else ""
            channel = open_channel(address, self._max, server_name=name)
            self._channels.append(channel)
            call = self._calls[key] = channel.unary_unary(
                RUN_STAGE, request_serializer=worker_pb2.StageRequest.SerializeToString
            )
        return call

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
