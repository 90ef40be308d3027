"""The KServe v2 inference servicer (`inference.GRPCInferenceService`), over the registry and router."""

from __future__ import annotations

import uuid

import grpc

from edgeswarm import __version__, codec
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.serving.request_checks import check_outputs, input_tensors, output_names
from edgeswarm.coordinator.serving.route_choice import stages_without_workers
from edgeswarm.coordinator.serving.router import Router
from edgeswarm.metrics import TENSOR_BYTES

PLATFORM = "onnxruntime_onnx"
# Looked up once: a label lookup per request costs more than the increment.
TENSOR_BYTES_IN = TENSOR_BYTES.labels("in")
TENSOR_BYTES_OUT = TENSOR_BYTES.labels("out")


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, settings: CoordinatorSettings, registry: Registry, router: Router) -> None:
        self.settings = settings
        self.registry = registry
        self.router = router

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
        return pb.ServerMetadataResponse(name="edgeswarm", version=__version__, extensions=[])

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
        async with self.registry.serving(request.model_name, request.model_version) as plan:
            tensors = input_tensors(plan.model, plan.signature, request)
            outputs = output_names(plan.model, plan.signature, request)
            remaining = context.time_remaining()
            timeout = self.settings.default_timeout if remaining is None else remaining
            request_id = request.id or uuid.uuid4().hex
            results = await self.router.infer(plan, tensors, outputs, request_id, timeout)
        check_outputs(plan.model, plan.signature, outputs, results)
        # Both sides' byte counts were checked against their shapes: count them from those.
        TENSOR_BYTES_IN.inc(sum(codec.declared_bytes(t) for t in tensors))
        TENSOR_BYTES_OUT.inc(sum(codec.declared_bytes(t) for t in results))
        out = pb.ModelInferResponse.InferOutputTensor
        return pb.ModelInferResponse(
            model_name=plan.model,
            model_version=str(plan.version),
            id=request.id,
            outputs=[out(name=t.name, datatype=t.datatype, shape=t.shape) for t in results],
            raw_output_contents=[t.data for t in results],
        )
