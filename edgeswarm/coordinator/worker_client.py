"""The coordinator's one seam to a worker: every call it makes to one goes through a `WorkerClient`.

    WorkerClient (Protocol)      what the fleet, planning and deploying code may ask of a worker
    └── GrpcWorkerClient         the real one: a channel, the Worker and Health stubs, errors translated

As the router reaches workers only through its `Transport`, the control plane reaches them only
through this: unit tests of membership, deploying and healing plug in a fake. Every gRPC error is
translated here, once, into the exception tree of `edgeswarm.errors` (StageUnavailable when the
worker could not be reached), with the worker's address in front of the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
from edgeswarm.channels import open_channel
from edgeswarm.errors import from_rpc_error
from edgeswarm.linkprobe import probe
from edgeswarm.security import routes
from edgeswarm.security.pki import worker_dns

CHUNK_BYTES = 1024 * 1024
# Longest wait for a shard to travel, a stage to load or segments to be timed.
SHARD_TIMEOUT_S = 300.0
# Health statuses as the Watch stream and Check report them.
SERVING = health_pb2.HealthCheckResponse.SERVING


def status_name(status: int) -> str:
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(status))


class WorkerClient(Protocol):
    """What the coordinator's control plane can ask of one worker. Every method raises EdgeswarmError."""

    address: str

    async def describe(
        self, coordinator: str = "", timeout: float = 10.0
    ) -> worker_pb2.WorkerDescription: ...

    async def put_shard(self, sha256: str, data: bytes, timeout: float) -> None:
        """Sends a shard's bytes, in chunks; a worker that has it already answers at once."""

    async def put_file(self, sha256: str, path: Path, external_data: bool, timeout: float) -> None:
        """Sends a stage's file from disk, a chunk at a time; `external_data`: it is a stage's data."""

    async def load_stage(
        self, sha256: str, plan: worker_pb2.PlanManifest | None, timeout: float
    ) -> worker_pb2.LoadStageResponse: ...

    async def unload_stage(self, sha256: str, timeout: float) -> None: ...

    async def profile(
        self, shards: Sequence[str], inputs: Mapping[str, np.ndarray], repeats: int, timeout: float
    ) -> list[float]:
        """Seconds each of `shards` (cached there, chained on `inputs`) takes on the worker."""

    async def run_stage(
        self, request: worker_pb2.StageRequest, timeout: float
    ) -> worker_pb2.StageResponse: ...

    async def end_session(self, session: str, timeout: float) -> bool:
        """Drops a generation's state on the worker; whether it held any."""

    def ring_session(
        self, start: worker_pb2.RingStart, timeout: float
    ) -> AsyncIterator[worker_pb2.RingToken]:
        """A generation run as a ring whose last stage is this worker's: its new tokens."""

    async def drain(self, reason: str, timeout: float) -> None: ...

    async def measure_link(self, address: str, timeout: float, worker_id: str = "") -> tuple[float, float]:
        """(round trip s, bandwidth bytes/s) from the worker to the one at `address` (`worker_id`)."""

    async def ping(self, payload_bytes: int) -> tuple[float, float]:
        """(round trip s, bandwidth bytes/s) from the coordinator to the worker."""

    def watch_health(self) -> AsyncIterator[int]:
        """The worker's health status each time it changes; ends, or raises, when the stream breaks."""

    async def check_health(self, timeout: float) -> int: ...

    async def close(self) -> None: ...


class GrpcWorkerClient:
    def __init__(self, address: str, max_message_bytes: int, label: str = "", worker_id: str = "") -> None:
        """`label` names the worker in error messages (its short id); over TLS, the worker's certificate
        must name `worker_id`."""
        self.address = address
        self._who = f"worker {label} at {address}" if label else f"worker at {address}"
        name = worker_dns(worker_id) if worker_id else ""
        self._channel = open_channel(address, max_message_bytes, server_name=name)
        self._worker = worker_pb2_grpc.WorkerStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """A gRPC error inside becomes its EdgeswarmError, its message naming the worker."""
        try:
            yield
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            error.message = f"{self._who}: {error.message}"
            raise error from exc

    async def describe(self, coordinator: str = "", timeout: float = 10.0) -> worker_pb2.WorkerDescription:
        with self._translated():
            request = worker_pb2.DescribeRequest(coordinator=coordinator, route_key=routes.public_key())
            description: worker_pb2.WorkerDescription = await self._worker.Describe(request, timeout=timeout)
        return description

    async def put_shard(self, sha256: str, data: bytes, timeout: float) -> None:
        with self._translated():
            await self._worker.PutShard(chunks(sha256, data), timeout=timeout)

    async def put_file(self, sha256: str, path: Path, external_data: bool, timeout: float) -> None:
        with self._translated():
            await self._worker.PutShard(file_chunks(sha256, path, external_data), timeout=timeout)

    async def load_stage(
        self, sha256: str, plan: worker_pb2.PlanManifest | None, timeout: float
    ) -> worker_pb2.LoadStageResponse:
        with self._translated():
            request = worker_pb2.LoadStageRequest(sha256=sha256, plan=plan)
            response: worker_pb2.LoadStageResponse = await self._worker.LoadStage(request, timeout=timeout)
        return response

    async def unload_stage(self, sha256: str, timeout: float) -> None:
        with self._translated():
            await self._worker.UnloadStage(worker_pb2.UnloadStageRequest(sha256=sha256), timeout=timeout)

    async def profile(
        self, shards: Sequence[str], inputs: Mapping[str, np.ndarray], repeats: int, timeout: float
    ) -> list[float]:
        request = worker_pb2.ProfileRequest(
            shards=list(shards), inputs=codec.encode_all(dict(inputs)), repeats=repeats
        )
        with self._translated():
            response = await self._worker.Profile(request, timeout=timeout)
        return list(response.seconds)

    async def run_stage(self, request: worker_pb2.StageRequest, timeout: float) -> worker_pb2.StageResponse:
        try:
            response: worker_pb2.StageResponse = await self._worker.RunStage(request, timeout=timeout)
        except grpc.RpcError as exc:
            # The data path: no prefix, as a worker's failed-workers trailer names who failed.
            raise from_rpc_error(exc) from exc
        return response

    async def end_session(self, session: str, timeout: float) -> bool:
        with self._translated():
            request = worker_pb2.EndSessionRequest(id=session)
            response = await self._worker.EndSession(request, timeout=timeout)
        return bool(response.held)

    async def ring_session(
        self, start: worker_pb2.RingStart, timeout: float
    ) -> AsyncIterator[worker_pb2.RingToken]:
        call = self._worker.RingSession(start, timeout=timeout)
        try:
            async for token in call:
                yield token
        except grpc.RpcError as exc:
            # The data path, as run_stage: the failed-workers trailer names who failed.
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def drain(self, reason: str, timeout: float) -> None:
        with self._translated():
            await self._worker.Drain(worker_pb2.DrainRequest(reason=reason), timeout=timeout)

    async def measure_link(self, address: str, timeout: float, worker_id: str = "") -> tuple[float, float]:
        with self._translated():
            request = worker_pb2.MeasureLinkRequest(address=address, worker_id=worker_id)
            figures = await self._worker.MeasureLink(request, timeout=timeout)
        return figures.rtt_seconds, figures.bandwidth

    async def ping(self, payload_bytes: int) -> tuple[float, float]:
        with self._translated():
            return await probe(self._worker, payload_bytes)

    async def watch_health(self) -> AsyncIterator[int]:
        with self._translated():
            async for reply in self._health.Watch(health_pb2.HealthCheckRequest(service="")):
                yield reply.status

    async def check_health(self, timeout: float) -> int:
        with self._translated():
            request = health_pb2.HealthCheckRequest(service="")
            reply = await self._health.Check(request, timeout=timeout)
        return int(reply.status)

    async def close(self) -> None:
        await self._channel.close()


async def file_chunks(sha256: str, path: Path, external_data: bool) -> AsyncIterator[worker_pb2.ShardChunk]:
    """A file as PutShard messages of CHUNK_BYTES, read as they are sent; the first names it."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = await asyncio.to_thread(f.read, CHUNK_BYTES)
        yield worker_pb2.ShardChunk(sha256=sha256, size=size, data=data, external_data=external_data)
        while data := await asyncio.to_thread(f.read, CHUNK_BYTES):
            yield worker_pb2.ShardChunk(data=data)


async def chunks(sha256: str, data: bytes) -> AsyncIterator[worker_pb2.ShardChunk]:
    """A shard as PutShard messages of CHUNK_BYTES; the first names it."""
    view = memoryview(data)
    yield worker_pb2.ShardChunk(sha256=sha256, size=len(data), data=bytes(view[:CHUNK_BYTES]))
    for offset in range(CHUNK_BYTES, len(data), CHUNK_BYTES):
        yield worker_pb2.ShardChunk(data=bytes(view[offset : offset + CHUNK_BYTES]))
