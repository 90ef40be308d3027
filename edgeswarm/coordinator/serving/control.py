"""The coordinator's gRPC servicers: KServe v2 inference and edgeswarm.v1 control. Thin by design."""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable

import grpc

from edgeswarm import __version__, codec
from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc, worker_pb2
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.fleet.members import Members
from edgeswarm.coordinator.fleet.view import UP
from edgeswarm.coordinator.planning.measure import PairLink
from edgeswarm.coordinator.serving.request_checks import check_outputs, input_tensors, output_names
from edgeswarm.coordinator.serving.route_choice import stages_without_workers
from edgeswarm.coordinator.serving.router import Router
from edgeswarm.errors import InvalidRequest, ResourceExhausted, from_rpc_error
from edgeswarm.metrics import TENSOR_BYTES
from edgeswarm.plans import Plan

log = logging.getLogger(__name__)

PLATFORM = "onnxruntime_onnx"
# Looked up once: a label lookup per request costs more than the increment.
TENSOR_BYTES_IN = TENSOR_BYTES.labels("in")
TENSOR_BYTES_OUT = TENSOR_BYTES.labels("out")


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, settings: CoordinatorSettings, deployer: Deployer, router: Router) -> None:
        self.settings = settings
        self.deployer = deployer
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
        ready = all(not stages_without_workers(p, live) for p in self.deployer.plans.values())
        return pb.ServerReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="edgeswarm", version=__version__, extensions=[])

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        plan = self.deployer.plans.get(request.name)
        ready = (
            plan is not None
            and request.version in ("", str(plan.version))
            and not stages_without_workers(plan, self.router.fleet.live())
        )
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        plan = self.deployer.plan(request.name, request.version)
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
        async with self.deployer.serving(request.model_name, request.model_version) as plan:
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


class ControlService(control_pb2_grpc.ControlServicer):
    def __init__(
        self, settings: CoordinatorSettings, deployer: Deployer, members: Members, router: Router
    ) -> None:
        self.settings = settings
        self.deployer = deployer
        self.members = members
        self.router = router

    async def Deploy(
        self, request_iterator: AsyncIterator[control_pb2.DeployRequest], context: grpc.aio.ServicerContext
    ) -> control_pb2.DeployResponse:
        header: control_pb2.DeployHeader | None = None
        chunks: list[bytes] = []
        size = 0
        async for message in request_iterator:
            if header is None:
                if not message.HasField("header"):
                    raise InvalidRequest("the first Deploy message must carry the header")
                header = message.header
            size += len(message.data)
            if size > self.settings.max_model_bytes:
                raise ResourceExhausted(
                    f"model is over the coordinator's limit of {self.settings.max_model_bytes} bytes"
                )
            chunks.append(message.data)
        if header is None:
            raise InvalidRequest("Deploy received no message")
        data = b"".join(chunks)
        if header.size and header.size != len(data):
            raise InvalidRequest(
                f"model {header.name!r}: announced {header.size} bytes, received {len(data)}"
            )
        mode, objective = header.mode or "auto", header.objective or "throughput"
        if header.dry_run:
            document = await self.deployer.plan_only(header.name, data, objective)
            return control_pb2.DeployResponse(plan_json=json.dumps(document))
        batching = (header.batch_max, header.batch_delay_ms / 1000)
        plan = await self.deployer.deploy(
            header.name, mode, header.replicas, header.stages, data, objective=objective, batching=batching
        )
        planned = self.deployer.reports.get(header.name) if mode == "auto" else None
        return control_pb2.DeployResponse(
            model=model_status(plan), plan_json=json.dumps(planned) if planned else ""
        )

    async def Undeploy(
        self, request: control_pb2.UndeployRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.UndeployResponse:
        await self.deployer.undeploy(request.name)
        return control_pb2.UndeployResponse()

    async def Drain(
        self, request: control_pb2.DrainWorkerRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.DrainWorkerResponse:
        worker = self.members.find(request.worker)
        try:
            await self.members.link(worker.id).worker.Drain(
                worker_pb2.DrainRequest(reason="edgeswarm drain"), timeout=10
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        log.info("worker_drain_requested id=%s name=%s", worker.id[:8], worker.name)
        return control_pb2.DrainWorkerResponse(id=worker.id, name=worker.name)

    async def Status(
        self, request: control_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.StatusResponse:
        workers = []
        for w in self.members.view.workers:
            description = self.members.descriptions.get(w.info.id)
            link = self.deployer.measurer.links.get(w.info.id)
            state = "banned" if w.state == UP and self.members.banned(w.info.id) else w.state
            workers.append(
                control_pb2.WorkerStatus(
                    id=w.info.id,
                    name=w.info.name,
                    address=w.info.address,
                    state=state,
                    cores=description.cores if description else 0,
                    memory_available=description.memory_available if description else 0,
                    loaded_stages=[
                        f"{p.model}/{s.index}"
                        for p in self.deployer.plans.values()
                        for s in p.stages
                        if w.info.id in s.workers
                    ],
                    in_flight=self.members.in_flight.get(w.info.id, 0),
                    calibration_gflops=description.calibration_gflops if description else 0.0,
                    memory_limit=description.memory_limit if description else 0,
                    rtt_ms=1000 * link.rtt if link else 0.0,
                    bandwidth_mbps=link.bandwidth / 1e6 if link else 0.0,
                )
            )
        return control_pb2.StatusResponse(
            fleet=self.settings.fleet,
            version=__version__,
            workers=workers,
            models=[model_status(p, self._recent) for p in self.deployer.plans.values()],
            links=[link_status(a, b, pair) for (a, b), pair in sorted(self.deployer.measurer.pairs.items())],
        )

    def _recent(self, model: str, worker: str) -> float:
        return self.router.latency.estimate(model, worker, self.router.clock())


def link_status(a: str, b: str, pair: PairLink) -> control_pb2.LinkStatus:
    """A timed link between workers; one that `a` could not reach has zero figures."""
    if not math.isfinite(pair.rtt):
        return control_pb2.LinkStatus(from_id=a, to_id=b, reachable=False)
    return control_pb2.LinkStatus(
        from_id=a, to_id=b, rtt_ms=1000 * pair.rtt, bandwidth_mbps=pair.bandwidth / 1e6, reachable=True
    )


def model_status(
    plan: Plan, recent: Callable[[str, str], float] = lambda model, worker: 0.0
) -> control_pb2.ModelStatus:
    """`recent(model, worker)`: seconds a request has lately taken through the worker."""
    return control_pb2.ModelStatus(
        name=plan.model,
        version=str(plan.version),
        mode=plan.mode,
        ready=True,
        objective=plan.objective,
        predicted_rps=plan.predicted_rps,
        predicted_latency_ms=1000 * plan.predicted_latency_s,
        stages=[
            control_pb2.StageStatus(
                index=s.index,
                sha256=s.sha256,
                size=s.size,
                inputs=s.inputs,
                outputs=s.outputs,
                workers=s.workers,
                group=s.group,
                recent_ms=[1000 * recent(plan.model, w) for w in s.workers],
            )
            for s in plan.stages
        ],
    )
