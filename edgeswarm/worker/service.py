"""The Worker gRPC service: shard upload, stage lifecycle, and running a hop then forwarding the rest."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
import onnxruntime as ort
from google.protobuf import message_factory

from edgeswarm import __version__, codec, deadlines
from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
from edgeswarm.channels import open_channel, process_identity, split_address
from edgeswarm.errors import DeadlineExceeded, InvalidRequest, StageUnavailable, from_rpc_error
from edgeswarm.linkprobe import MAX_PING_BYTES, PEER_PING_BYTES, probe
from edgeswarm.metrics import WORKER_IN_FLIGHT
from edgeswarm.security import routes
from edgeswarm.security.pki import is_worker_id, worker_dns
from edgeswarm.worker.batching import Batcher
from edgeswarm.worker.cache import ShardStore, ShardWriter, check_digest
from edgeswarm.worker.decoding import Decoding
from edgeswarm.worker.peers import Peers
from edgeswarm.worker.ring import Rings
from edgeswarm.worker.runtime import MAX_PROFILE_S, StageRuntime
from edgeswarm.worker.sessions import DEFAULT_SESSION_BYTES, SessionStore

log = logging.getLogger(__name__)


def memory_available() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class WorkerService(worker_pb2_grpc.WorkerServicer):
    def __init__(
        self,
        worker_id: str,
        name: str,
        fleet: str,
        store: ShardStore,
        runtime: StageRuntime,
        peers: Peers,
    ) -> None:
        self.worker_id = worker_id
        self.name = name
        self.fleet = fleet
        self.store = store
        self.runtime = runtime
        self.peers = peers
        self.coordinator = ""
        # Requests running here, and the plan of each model with a stage loaded here, by model name.
        self.in_flight = 0
        self._in_flight_gauge = WORKER_IN_FLIGHT.labels(name)
        self.batcher = Batcher(runtime)
        self.decoding = Decoding(runtime, SessionStore(DEFAULT_SESSION_BYTES), Rings(self._ring_forward))
        self._idle = asyncio.Condition()
        # Since the last telemetry sample: requests finished and seconds spent in them.
        self._finished = 0
        self._busy_s = 0.0
        self._sampled_at = time.monotonic()
        self.plans: dict[str, worker_pb2.PlanManifest] = {}
        # The data shards each loaded stage reads its weights from.
        self.stage_data: dict[str, list[str]] = {}
        self.drain: Callable[[str], None] = lambda reason: None
        # Largest size of the shard cache (0: no limit); see ShardStore.evict.
        self.cache_max_bytes = 0
        # Measured at start (GFLOP/s), and the weight bytes it may hold (0: the memory available).
        self.calibration_gflops = 0.0
        self.memory_limit = 0
        self.profile_limit = MAX_PROFILE_S

    async def Describe(
        self, request: worker_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.WorkerDescription:
        if request.route_key:  # only the coordinator may call Describe (security.roles)
            routes.use_public_key(request.route_key)
        if request.coordinator and request.coordinator != self.coordinator:
            self.coordinator = request.coordinator
            log.info(
                "worker_joined coordinator=%s fleet=%s cached_shards=%d loaded_stages=%d",
                request.coordinator, self.fleet, len(self.store.digests()), len(self.runtime.loaded),
            )  # fmt: skip
        return worker_pb2.WorkerDescription(
            id=self.worker_id,
            name=self.name,
            fleet=self.fleet,
            version=__version__,
            cores=os.cpu_count() or 1,
            memory_available=memory_available(),
            cached_shards=self.store.digests(),
            loaded_stages=self.runtime.loaded,
            onnxruntime_version=ort.__version__,
            plans=list(self.plans.values()),
            calibration_gflops=self.calibration_gflops,
            memory_limit=self.memory_limit or memory_available(),
            stage_memory=self.runtime.memory,
            session_memory=self.decoding.store.budget_bytes,
            session_bytes=self.decoding.store.nbytes,
        )

    async def PutShard(
        self, request_iterator: AsyncIterator[worker_pb2.ShardChunk], context: grpc.aio.ServicerContext
    ) -> worker_pb2.PutShardResponse:
        writer: ShardWriter | None = None
        try:
            async for chunk in request_iterator:
                if writer is None:
                    sha256 = check_digest(chunk.sha256)
                    if self.store.has(sha256):
                        return worker_pb2.PutShardResponse(sha256=sha256, already_cached=True)
                    if chunk.size < 0:
                        raise InvalidRequest(f"shard {sha256[:12]}: size {chunk.size} is negative")
                    # The quota holds while the shard is written: room is made, or refused, for the
                    # size announced, and the writer takes no byte beyond it.
                    evicted = self.store.make_room(chunk.size, self.cache_max_bytes, self._pinned())
                    if evicted:
                        log.info("shards_evicted count=%d shards=%s", len(evicted), [d[:12] for d in evicted])
                    writer = self.store.writer(sha256, chunk.size, chunk.external_data)
                writer.write(chunk.data)
            if writer is None:
                raise InvalidRequest("PutShard received no chunk")
            writer.commit()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        log.info("shard_stored shard=%s bytes=%d", writer.sha256[:12], writer.size)
        evicted = self.store.evict(self.cache_max_bytes, {writer.sha256, *self._pinned()})
        if evicted:
            log.info("shards_evicted count=%d shards=%s", len(evicted), [d[:12] for d in evicted])
        return worker_pb2.PutShardResponse(sha256=writer.sha256)

    async def LoadStage(
        self, request: worker_pb2.LoadStageRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.LoadStageResponse:
        if not self.store.path(request.sha256).is_file():
            raise InvalidRequest(f"shard {request.sha256[:12]} is not in this worker's cache")
        data = self.store.data_of(request.sha256)
        await self.runtime.load(request.sha256, self.store.path(request.sha256), external=bool(data))
        self.stage_data[request.sha256] = data
        for sha in (request.sha256, *data):
            self.store.touch(sha)
        if request.HasField("plan"):
            known = self.plans.get(request.plan.model)
            if known is None or known.version <= request.plan.version:
                self.plans[request.plan.model] = request.plan
        return worker_pb2.LoadStageResponse(
            inputs=self.runtime.inputs(request.sha256), outputs=self.runtime.outputs(request.sha256)
        )

    def _pinned(self) -> set[str]:
        """The shards of the stages loaded here, their data included: never evicted."""
        loaded = self.runtime.loaded
        return {*loaded, *(sha for stage in loaded for sha in self.stage_data.get(stage, ()))}

    async def UnloadStage(
        self, request: worker_pb2.UnloadStageRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.UnloadStageResponse:
        self.runtime.unload(request.sha256)
        self.stage_data.pop(request.sha256, None)
        loaded = set(self.runtime.loaded)
        for model, plan in list(self.plans.items()):
            if not loaded.intersection(stage.sha256 for stage in plan.stages):
                del self.plans[model]
        return worker_pb2.UnloadStageResponse()

    async def Profile(
        self, request: worker_pb2.ProfileRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.ProfileResponse:
        if not 0 <= request.repeats <= MAX_PROFILE_REPEATS:
            raise InvalidRequest(f"Profile: repeats must be 0..{MAX_PROFILE_REPEATS}, not {request.repeats}")
        missing = [sha[:12] for sha in request.shards if not self.store.has(check_digest(sha))]
        if missing:
            raise InvalidRequest(f"shard(s) {', '.join(missing)} are not in this worker's cache")
        paths = [self.store.path(sha) for sha in request.shards]
        # Profiling holds the segments open together up to the weight bytes this worker may hold anyway.
        budget = self.memory_limit or memory_available()
        remaining = context.time_remaining()
        limit = self.profile_limit if remaining is None else min(remaining, self.profile_limit)
        seconds = await self.runtime.profile(
            paths, codec.decode_all(request.inputs), request.repeats or 5, budget, limit
        )
        log.info("profiled segments=%d seconds=%s", len(seconds), [round(s, 5) for s in seconds])
        return worker_pb2.ProfileResponse(seconds=seconds)

    async def Ping(
        self, request: worker_pb2.PingRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.PingResponse:
        return worker_pb2.PingResponse(size=len(request.payload))

    async def MeasureLink(
        self, request: worker_pb2.MeasureLinkRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.LinkFigures:
        try:
            split_address(request.address)
        except ValueError as exc:
            raise InvalidRequest(f"MeasureLink: {exc}") from exc
        size = request.payload_bytes or PEER_PING_BYTES
        if not 0 < size <= MAX_PING_BYTES:
            raise InvalidRequest(f"MeasureLink: payload_bytes must be 1..{MAX_PING_BYTES}, not {size}")
        # A channel of its own, closed after: the address comes from the caller, not from a route.
        # Over TLS it reaches only the fleet worker named (its certificate must say so).
        if process_identity() is not None and not is_worker_id(request.worker_id):
            raise InvalidRequest("MeasureLink: the other worker's id is needed to check who answers")
        name = worker_dns(request.worker_id) if request.worker_id else ""
        async with open_channel(request.address, server_name=name) as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            try:
                rtt, bandwidth = await probe(stub, size, timeout=context.time_remaining())
            except grpc.RpcError as exc:
                why = f"{exc.code().name} {exc.details()}"
                raise StageUnavailable(
                    f"worker {self.worker_id[:8]} cannot reach {request.address}: {why}"
                ) from exc
        log.info(
            "link_measured to=%s rtt_ms=%.3f bandwidth_mbps=%.1f",
            request.address,
            1000 * rtt,
            bandwidth / 1e6,
        )
        return worker_pb2.LinkFigures(rtt_seconds=rtt, bandwidth=bandwidth)

    async def Drain(
        self, request: worker_pb2.DrainRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.DrainResponse:
        self.drain(request.reason or "requested")
        return worker_pb2.DrainResponse()

    async def RunStage(
        self, request: worker_pb2.StageRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.StageResponse | bytes:
        return await self._counted(request, context.time_remaining())

    async def _counted(
        self, request: worker_pb2.StageRequest, timeout: float | None
    ) -> worker_pb2.StageResponse | bytes:
        self.in_flight += 1
        self._in_flight_gauge.set(self.in_flight)
        start = time.perf_counter()
        try:
            return await self._run_stage(request, timeout)
        finally:
            self.in_flight -= 1
            self._in_flight_gauge.set(self.in_flight)
            self._finished += 1
            self._busy_s += time.perf_counter() - start
            if not self.in_flight:
                async with self._idle:
                    self._idle.notify_all()

    async def EndSession(
        self, request: worker_pb2.EndSessionRequest, context: grpc.aio.ServicerContext
    ) -> worker_pb2.EndSessionResponse:
        return worker_pb2.EndSessionResponse(held=self.decoding.store.end(request.id))

    async def RingSession(
        self, request: worker_pb2.RingStart, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[worker_pb2.RingToken]:
        assert self.decoding.rings is not None
        async for token in self.decoding.rings.run(request, context.time_remaining()):
            yield token

    def telemetry(self) -> dict[str, object]:
        """Load since the previous call: requests in flight, finished per second, mean time per request."""
        now = time.monotonic()
        elapsed = max(now - self._sampled_at, 1e-9)
        sample: dict[str, object] = {
            "in_flight": self.in_flight,
            "requests_per_s": round(self._finished / elapsed, 3),
            "stage_ms": round(1000 * self._busy_s / self._finished, 3) if self._finished else 0.0,
            "memory_available": memory_available(),
            "session_bytes": self.decoding.store.nbytes,
        }
        self._finished, self._busy_s, self._sampled_at = 0, 0.0, now
        return sample

    async def wait_idle(self) -> None:
        """Returns once no request is running here."""
        async with self._idle:
            await self._idle.wait_for(lambda: not self.in_flight)

    async def _run_stage(
        self, request: worker_pb2.StageRequest, timeout: float | None
    ) -> worker_pb2.StageResponse | bytes:
        if not request.route:
            raise InvalidRequest("RunStage needs a route with at least one hop")
        if process_identity() is not None:
            routes.check_route(request)
        hop, rest = request.route[0], request.route[1:]
        if not self.runtime.has(hop.stage):
            # The coordinator's view is stale (this process restarted, say): another replica can serve.
            raise StageUnavailable(
                f"stage {hop.stage[:12]} is not loaded on worker {self.worker_id[:8]}", (self.worker_id,)
            )
        if request.HasField("session"):
            return await self.decoding.step(request, timeout, self.forward)
        if hop.batch_max > 1:
            delay = hop.batch_delay_ms / 1000
            carried = await self.batcher.run(hop.stage, request.tensors, hop.carry, hop.batch_max, delay)
        else:
            carried = await self.runtime.run(hop.stage, request.tensors, hop.carry, timeout)
        if not rest:
            return worker_pb2.StageResponse(tensors=carried)
        onward = worker_pb2.StageRequest(
            request_id=request.request_id,
            model=request.model,
            tensors=carried,
            route=rest,
            route_macs=routes.onward_macs(request),
        )
        return await self.forward(onward, timeout)

    async def _ring_forward(self, request: worker_pb2.StageRequest, timeout: float | None) -> bytes:
        """A ring's next step to its first stage: run here, in this process, when this worker is
        the first stage's (a pipeline of one stage, or a ring that comes back here); else sent on."""
        hop = request.route[0]
        if hop.worker_ids[:1] == [self.worker_id]:
            return _serialize_answer(await self._counted(request, timeout))
        return await self.forward(request, timeout)

    async def forward(self, request: worker_pb2.StageRequest, timeout: float | None) -> bytes:
        """Sends `request` to the next hop, failing over to the hop's other replicas; returns the
        serialized StageResponse it answered."""
        hop = request.route[0]
        failed: list[str] = []
        for address, worker in _candidates(hop.addresses, hop.worker_ids):
            try:
                response: bytes = await self.peers.run_stage(address, worker)(
                    request, timeout=deadlines.onward(timeout)
                )
                return response
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                if isinstance(error, DeadlineExceeded):
                    # This hop still has time: the next one is stuck (or its link is).
                    error = StageUnavailable(f"worker {worker[:8]} did not answer in time", (worker,))
                if isinstance(error, StageUnavailable) and set(error.failed) <= {worker}:
                    log.warning(
                        "hop_failed request=%s worker=%s address=%s error=%r",
                        request.request_id,
                        worker,
                        address,
                        error.message,
                    )
                    failed.append(worker)
                    continue
                if isinstance(error, StageUnavailable):
                    raise StageUnavailable(error.message, (*failed, *error.failed)) from exc
                raise error from exc
        raise StageUnavailable(
            f"no replica of stage {hop.stage[:12]} answered (tried {', '.join(failed) or 'none'})",
            tuple(failed),
        )


def _candidates(addresses: Sequence[str], worker_ids: Sequence[str]) -> list[tuple[str, str]]:
    ids = list(worker_ids) + [""] * (len(addresses) - len(worker_ids))
    return [(a, w or a) for a, w in zip(addresses, ids, strict=False)]


# Most runs of each segment one Profile may ask for (the coordinator asks for 5).
MAX_PROFILE_REPEATS = 50


def _serialize_answer(answer: worker_pb2.StageResponse | bytes) -> bytes:
    return answer if isinstance(answer, bytes) else answer.SerializeToString()


def add_to_server(service: WorkerService, server: grpc.aio.Server) -> None:
    """Registers the Worker service; RunStage may answer a StageResponse or, relaying the next hop's
    answer, its bytes as they came."""
    descriptor = worker_pb2.DESCRIPTOR.services_by_name["Worker"]
    handlers = {}
    for method in descriptor.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        serialize = _serialize_answer if method.name == "RunStage" else response.SerializeToString
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(service, method.name),
            request_deserializer=request.FromString,
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
    server.add_registered_method_handlers(descriptor.full_name, handlers)
