"""The KServe v2 inference servicer (`inference.GRPCInferenceService`), over the registry and router."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc

from edgeswarm import __version__, codec
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.serving.request_checks import check_outputs, input_tensors, output_names
from edgeswarm.coordinator.serving.route_choice import stages_without_workers
from edgeswarm.coordinator.serving.router import Router
from edgeswarm.coordinator.serving.statistics import Phases, Statistics
from edgeswarm.coordinator.serving.triton import PLATFORM, batch_of, model_config, model_statistics
from edgeswarm.errors import EdgeswarmError, Unimplemented
from edgeswarm.metrics import TENSOR_BYTES
from edgeswarm.plans import Plan

log = logging.getLogger(__name__)

# Triton's extension names for what this service offers beyond KServe v2: clients such as
# perf_analyzer ask for statistics only from a server that lists them.
EXTENSIONS = ("model_configuration", "model_repository", "statistics")

# Looked up once: a label lookup per request costs more than the increment.
TENSOR_BYTES_IN = TENSOR_BYTES.labels("in")
TENSOR_BYTES_OUT = TENSOR_BYTES.labels("out")


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self, settings: CoordinatorSettings, deployer: Deployer, router: Router, statistics: Statistics
    ) -> None:
        self.settings = settings
        self.deployer = deployer
        self.registry = deployer.registry
        self.router = router
        self.statistics = statistics

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        """Ready when every deployed model can be served (an empty fleet with no model is ready)."""
        live = self.router.fleet.live()
        ready = all(not stages_without_workers(p, live) for p in self.registry.plans.values())
        return pb.ServerReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="edgeswarm", version=__version__, extensions=list(EXTENSIONS))

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        plan = self.registry.plans.get(request.name)
        ready = (
            plan is not None
            and request.version in ("", str(plan.version))
            and not stages_without_workers(plan, self.router.fleet.live())
        )
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        plan = self.registry.plan(request.name, request.version)
        meta = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=plan.model,
            versions=[str(plan.version)],
            platform=PLATFORM,
            inputs=[meta(name=t.name, datatype=t.datatype, shape=t.shape) for t in plan.signature.inputs],
            outputs=[meta(name=t.name, datatype=t.datatype, shape=t.shape) for t in plan.signature.outputs],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        remaining = context.time_remaining()
        return await self._infer(request, self.settings.default_timeout if remaining is None else remaining)

    async def _infer(self, request: pb.ModelInferRequest, timeout: float) -> pb.ModelInferResponse:
        """Serves one request and records it in the model's statistics (a model not deployed has none)."""
        start = time.perf_counter()
        plan: Plan | None = None
        try:
            async with self.registry.serving(request.model_name, request.model_version) as plan:
                routed = time.perf_counter()
                tensors = input_tensors(plan.model, plan.signature, request)
                outputs = output_names(plan.model, plan.signature, request)
                checked = time.perf_counter()
                request_id = request.id or uuid.uuid4().hex
                results = await self.router.infer(
                    plan, tensors, outputs, request_id, timeout - (checked - start)
                )
                ran = time.perf_counter()
            check_outputs(plan.model, plan.signature, outputs, results)
            # Both sides' byte counts were checked against their shapes: count them from those.
            TENSOR_BYTES_IN.inc(sum(codec.declared_bytes(t) for t in tensors))
            TENSOR_BYTES_OUT.inc(sum(codec.declared_bytes(t) for t in results))
            out = pb.ModelInferResponse.InferOutputTensor
            response = pb.ModelInferResponse(
                model_name=plan.model,
                model_version=str(plan.version),
                id=request.id,
                outputs=[out(name=t.name, datatype=t.datatype, shape=t.shape) for t in results],
                raw_output_contents=[t.data for t in results],
            )
        except EdgeswarmError:
            if plan is not None:
                self.statistics.failed(plan.model, str(plan.version), time.perf_counter() - start)
            raise
        phases = Phases(routed - start, checked - routed, ran - checked, time.perf_counter() - ran)
        self.statistics.succeeded(plan.model, str(plan.version), batch_of(plan.signature, tensors), phases)
        return response

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Each request's response in turn; one that fails answers its error and the stream goes on."""
        async for request in request_iterator:
            try:
                response = await self._infer(request, self.settings.default_timeout)
            except EdgeswarmError as exc:
                log.info("stream_request_failed model=%s code=%s", request.model_name, exc.code.name)
                yield pb.ModelStreamInferResponse(error_message=f"{exc.code.name}: {exc.message}")
                continue
            yield pb.ModelStreamInferResponse(infer_response=response)

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        plan = self.registry.plan(request.name, request.version)
        return pb.ModelConfigResponse(config=model_config(plan, self.settings.max_message_bytes))

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        """Every deployed model's statistics, or those of the one named (which must be deployed)."""
        if request.name:
            self.registry.plan(request.name, request.version)
        deployed = self.registry.plans
        return pb.ModelStatisticsResponse(
            model_stats=[
                model_statistics(model, version, stats)
                for model, version, stats in self.statistics.of(request.name, request.version)
                if model in deployed
            ]
        )

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        """Deployed models (READY, or UNAVAILABLE naming the stages with no live worker) and the
        undeployed ones a load can place again (UNAVAILABLE, unloaded)."""
        index = pb.RepositoryIndexResponse.ModelIndex
        live = self.router.fleet.live()
        models = []
        for plan in self.registry.plans.values():
            missing = stages_without_workers(plan, live)
            reason = (
                f"no live worker for stage(s) {', '.join(str(i + 1) for i in missing)}" if missing else ""
            )
            models.append(
                index(
                    name=plan.model,
                    version=str(plan.version),
                    state="UNAVAILABLE" if missing else "READY",
                    reason=reason,
                )
            )
        for name in sorted(set(self.registry.retired) - set(self.registry.plans)):
            models.append(index(name=name, state="UNAVAILABLE", reason="unloaded"))
        return pb.RepositoryIndexResponse(
            models=[
                m for m in sorted(models, key=lambda m: m.name) if m.state == "READY" or not request.ready
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        """Places the named model again as its last deploy asked, deployed now or unloaded."""
        await self.deployer.redeploy(request.model_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        await self.deployer.undeploy(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def SystemSharedMemoryStatus(self, request: object, context: grpc.aio.ServicerContext) -> NoReturn:
        _no_shared_memory()

    async def SystemSharedMemoryRegister(
        self, request: object, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        _no_shared_memory()

    async def SystemSharedMemoryUnregister(
        self, request: object, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        _no_shared_memory()

    async def CudaSharedMemoryStatus(self, request: object, context: grpc.aio.ServicerContext) -> NoReturn:
        _no_shared_memory()

    async def CudaSharedMemoryRegister(self, request: object, context: grpc.aio.ServicerContext) -> NoReturn:
        _no_shared_memory()

    async def CudaSharedMemoryUnregister(
        self, request: object, context: grpc.aio.ServicerContext
    ) -> NoReturn:
        _no_shared_memory()


def _no_shared_memory() -> NoReturn:
    raise Unimplemented(
        "edgeswarm does not share memory with clients: its workers are other machines; "
        "send tensors in the request (raw_input_contents)"
    )
