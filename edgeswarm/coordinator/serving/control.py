"""The edgeswarm.v1 Control servicer: deploy, undeploy, drain, status. Thin by design."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from edgeswarm import __version__
from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.fleet.members import Members
from edgeswarm.coordinator.planning.measure import Measurer, TimedPair
from edgeswarm.coordinator.serving.router import Router
from edgeswarm.coordinator.serving.tokenizing import chat_template, load_tokenizer
from edgeswarm.coordinator.serving.uploads import UploadBudget, receive
from edgeswarm.errors import InvalidRequest, PlacementError
from edgeswarm.graph.quantize import quantized
from edgeswarm.plans import Mode, Objective, Plan, Quantization, WorkerState
from edgeswarm.security.authority import FleetAuthority
from edgeswarm.security.tokens import Role, TokenRecord

log = logging.getLogger(__name__)


class ControlService(control_pb2_grpc.ControlServicer):
    def __init__(
        self,
        settings: CoordinatorSettings,
        deployer: Deployer,
        members: Members,
        measurer: Measurer,
        router: Router,
        authority: FleetAuthority | None = None,
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.deployer = deployer
        self.registry = deployer.registry
        self.members = members
        self.measurer = measurer
        self.router = router
        self.uploads = UploadBudget(settings.max_upload_bytes)

    async def Deploy(
        self, request_iterator: AsyncIterator[control_pb2.DeployRequest], context: grpc.aio.ServicerContext
    ) -> control_pb2.DeployResponse:
        store = self.deployer.store
        header, model = await receive(
            request_iterator, self.uploads, self.settings.max_model_bytes, store, self.deployer.kept
        )
        log.info("model_stored model=%s sha256=%s bytes=%d files=%d", header.name, model.sha256[:12],
                 model.size, len(model.files))  # fmt: skip
        mode = Mode.parse(header.mode or Mode.AUTO, "mode")
        objective = Objective.parse(header.objective or Objective.THROUGHPUT, "objective")
        quantization = Quantization.parse(header.quantize, "quantize") if header.quantize else None
        # A model in external data is quantized stage by stage as it is cut (Deployer).
        if quantization is not None and quantization not in model.variants and not model.external:
            data = await asyncio.to_thread(model.path.read_bytes)
            data = await asyncio.to_thread(quantized, header.name, data, quantization)
            await asyncio.to_thread(store.add_variant, model, quantization, data)
            log.info("model_quantized model=%s method=%s bytes=%d", header.name, quantization, len(data))
            del data
        if header.dry_run:
            document = await self.deployer.plan_only(header.name, model, objective, quantization)
            return control_pb2.DeployResponse(plan_json=json.dumps(document))
        batching = (header.batch_max, header.batch_delay_ms / 1000)
        tokenizer = ""
        if header.tokenizer:
            load_tokenizer(header.tokenizer, header.name)  # refused here if it is not one
            if header.tokenizer_config:
                chat_template(header.tokenizer_config, header.name)  # and a template that does not parse
            tokenizer = await asyncio.to_thread(
                store.put_tokenizer, header.tokenizer, header.tokenizer_config
            )
        plan = await self.deployer.deploy(
            header.name,
            mode,
            header.replicas,
            header.stages,
            model,
            objective=objective,
            batching=batching,
            quantization=quantization,
            states=declared_states(header.states),
            tokenizer=tokenizer,
        )
        planned = self.registry.reports.get(header.name) if mode is Mode.AUTO else None
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
        await self.members.client(worker.id).drain("edgeswarm drain", timeout=10)
        log.info("worker_drain_requested id=%s name=%s", worker.id[:8], worker.name)
        return control_pb2.DrainWorkerResponse(id=worker.id, name=worker.name)

    async def Status(
        self, request: control_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.StatusResponse:
        workers = []
        for w in self.members.view.workers:
            description = self.members.descriptions.get(w.info.id)
            link = self.measurer.links.get(w.info.id)
            banned = w.state is WorkerState.UP and self.members.banned(w.info.id)
            state = WorkerState.BANNED if banned else w.state
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
                        for p in self.registry.plans.values()
                        for s in p.stages
                        if w.info.id in s.workers
                    ],
                    in_flight=self.members.in_flight.get(w.info.id, 0),
                    calibration_gflops=description.calibration_gflops if description else 0.0,
                    memory_limit=description.memory_limit if description else 0,
                    rtt_ms=1000 * link.rtt if link else 0.0,
                    bandwidth_mbps=link.bandwidth / 1e6 if link else 0.0,
                    memory_used=sum(description.stage_memory.values()) if description else 0,
                    session_memory=description.session_memory if description else 0,
                    session_bytes=description.session_bytes if description else 0,
                )
            )
        return control_pb2.StatusResponse(
            fleet=self.settings.fleet,
            version=__version__,
            workers=workers,
            models=[model_status(p, self._recent) for p in self.registry.plans.values()],
            links=[link_status(a, b, pair) for (a, b), pair in sorted(self.measurer.pairs.items())],
            store=await asyncio.to_thread(self._store_status),
        )

    def _authority(self) -> FleetAuthority:
        if self.authority is None:
            raise PlacementError("this coordinator runs --insecure: it has no fleet CA and no tokens")
        return self.authority

    async def Join(
        self, request: control_pb2.JoinRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.JoinResponse:
        authority = self._authority()
        if request.token:
            certificate = authority.enroll(request.token, request.certificate_request)
        else:
            certificate = authority.renew(request.current_certificate, request.certificate_request)
        return control_pb2.JoinResponse(certificate=certificate, ca=authority.ca_pem)

    async def CreateToken(
        self, request: control_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.CreateTokenResponse:
        authority = self._authority()
        try:
            role = Role(request.role)
        except ValueError:
            raise InvalidRequest(f"role must be worker, client or admin, not {request.role!r}") from None
        if request.ttl_seconds < 0:
            raise InvalidRequest(f"ttl must not be negative, not {request.ttl_seconds}")
        record, secret = authority.tokens.create(role, request.ttl_seconds, request.description)
        log.info("token_created id=%s role=%s ttl_s=%.0f", record.id, role, request.ttl_seconds)
        return control_pb2.CreateTokenResponse(token=authority.token(record, secret), info=token_info(record))

    async def ListTokens(
        self, request: control_pb2.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ListTokensResponse:
        return control_pb2.ListTokensResponse(
            tokens=[token_info(r) for r in self._authority().tokens.records()]
        )

    async def RevokeToken(
        self, request: control_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.RevokeTokenResponse:
        record = self._authority().tokens.revoke(request.id)
        log.info("token_revoked id=%s role=%s worker=%s", record.id, record.role, record.worker_id[:8])
        if record.worker_id:
            self.members.revoke(record.worker_id)
        return control_pb2.RevokeTokenResponse(info=token_info(record))

    def _store_status(self) -> control_pb2.StoreStatus:
        store = self.deployer.store
        deployed = {r.model.sha256 for r in self.registry.requests.values()}
        models = []
        for m in store.models():
            models.append(
                control_pb2.StoredModel(
                    name=", ".join(m.names) or m.name,
                    sha256=m.sha256,
                    size=m.size,
                    variants=m.variants,
                    deployed=m.sha256 in deployed,
                    last_used=m.last_used,
                    stage_bytes=store.kept_stage_bytes(m),
                )
            )
        return control_pb2.StoreStatus(
            path=str(store.root), quota=store.quota, used=store.used(), models=models
        )

    def _recent(self, model: str, worker: str) -> float:
        return self.router.latency.estimate(model, worker, self.router.clock())


def token_info(record: TokenRecord) -> control_pb2.TokenInfo:
    return control_pb2.TokenInfo(
        id=record.id, role=record.role, created=record.created, expires=record.expires,
        revoked=record.revoked, worker_id=record.worker_id, description=record.description,
    )  # fmt: skip


def link_status(a: str, b: str, pair: TimedPair) -> control_pb2.LinkStatus:
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
        objective=plan.objective or "",
        quantization=plan.quantization or "",
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


def declared_states(specs: Sequence[str]) -> dict[str, str]:
    """`OUTPUT=INPUT` pairs as a deploy declares them; InvalidRequest naming a malformed one."""
    pairs = {}
    for spec in specs:
        output, sep, input_ = spec.partition("=")
        if not sep or not output or not input_:
            raise InvalidRequest(f"a state pair is OUTPUT=INPUT (an output feeding an input), not {spec!r}")
        pairs[output] = input_
    return pairs
