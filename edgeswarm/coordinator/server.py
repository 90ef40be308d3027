"""`edgeswarm coordinator`: discovery, the fleet's health, deploys, and the inference and control APIs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY
from tokenizers import Tokenizer

from edgeswarm._proto.edgeswarm.v1 import control_pb2_grpc, generation_pb2_grpc
from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.channels import bind, check_insecure, new_server, secure_with, serve_metrics_on, split_address
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.deploying.healer import Healer
from edgeswarm.coordinator.deploying.installer import Installer
from edgeswarm.coordinator.deploying.recovery import Recovery
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.fleet.discovery import Discovery
from edgeswarm.coordinator.fleet.members import Members
from edgeswarm.coordinator.fleet.view import UP
from edgeswarm.coordinator.modelstore import ModelStore
from edgeswarm.coordinator.planning.measure import Measurer
from edgeswarm.coordinator.serving.control import ControlService
from edgeswarm.coordinator.serving.generate_rpc import GenerationService
from edgeswarm.coordinator.serving.generation import Generator
from edgeswarm.coordinator.serving.inference import InferenceService
from edgeswarm.coordinator.serving.openai_http import serve_http
from edgeswarm.coordinator.serving.router import GrpcTransport, Router
from edgeswarm.coordinator.serving.statistics import Statistics, TritonMetrics
from edgeswarm.coordinator.serving.tokenizing import ChatTemplate, chat_template, load_tokenizer
from edgeswarm.errors import EdgeswarmError
from edgeswarm.mdns import choose_interface
from edgeswarm.plans import Plan
from edgeswarm.security import routes
from edgeswarm.security.authority import FleetAuthority
from edgeswarm.security.roles import coordinator_authorizer

log = logging.getLogger(__name__)


async def serve(settings: CoordinatorSettings) -> None:
    interface = choose_interface(settings.interface, split_address(settings.listen)[0])
    settings = settings.model_copy(update={"interface": interface})
    registry = Registry(lambda: members.live(), time.monotonic, settings.recovery_window)
    store = ModelStore(settings.state_dir / "store", settings.store_max_bytes)
    installer = Installer(registry, store)
    recovery = Recovery(registry, installer, lambda: members.live_described())
    members = Members(settings, reconcile=recovery.reconcile)
    members.on_change.append(registry.announce)
    measurer = Measurer(members.client, members.descriptions.get, members.address, members.clock)
    deployer = Deployer(members, registry, installer, measurer)
    router = Router(
        members,
        GrpcTransport(members.client),
        latency_decay=settings.latency_decay,
        attempt_factor=settings.attempt_factor,
        attempt_floor=settings.attempt_floor,
    )
    members.on_lost.append(router.abandon)
    generator = Generator(
        members,
        GrpcTransport(members.client),
        _session_ender(members),
        ring=(lambda w, start, t: members.client(w).ring_session(start, t)) if settings.ring else None,
    )
    members.on_lost.append(generator.abandon)
    health_servicer = health.aio.HealthServicer()

    authority = None
    if settings.insecure:
        check_insecure(settings.listen)
        if settings.http:
            check_insecure(settings.http)
    else:
        names = [settings.interface, *(split_address(a)[0] for a in (settings.listen, settings.http) if a)]
        authority = FleetAuthority(settings.state_dir, settings.fleet, names)
        secure_with(authority.identity)
        routes.use_key(authority.route_key)
        members.revoked.update(authority.tokens.revoked_workers())
    authorize = coordinator_authorizer(authority.authenticate) if authority else None
    server = new_server(settings.max_message_bytes, authorize)
    statistics = Statistics()
    REGISTRY.register(TritonMetrics(statistics))
    inference = InferenceService(settings, deployer, router, statistics)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(inference, server)
    control_pb2_grpc.add_ControlServicer_to_server(
        ControlService(settings, deployer, members, measurer, router, authority), server
    )
    tokenizer_of, template_of = _tokenizers(store)
    generation_pb2_grpc.add_GenerationServicer_to_server(
        GenerationService(registry, generator, tokenizer_of, settings.default_timeout), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Clients show a bearer token, not a certificate; workers' calls (Join) carry their own proof.
    port = bind(server, settings.listen, require_client_certificate=False)
    serve_metrics_on(settings.metrics)
    members.address_for_workers = f"{settings.interface}:{port}"
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    http = (
        await serve_http(settings, registry, generator, tokenizer_of, authority, template_of)
        if settings.http
        else None
    )
    if http is not None:
        log.info("http_serving address=%s tls=%s", settings.http, authority is not None)
    if authority is not None:
        admin = authority.serve_on(members.address_for_workers)
        log.info("coordinator_secure ca_sha256=%s admin_credentials=%s", authority.ca_hash, admin)
    log.info(
        "coordinator_ready fleet=%s listen=%s port=%d mdns=%s",
        settings.fleet,
        settings.listen,
        port,
        settings.interface,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    discovery = Discovery(settings.interface, settings.fleet, members.found)
    try:
        async with asyncio.TaskGroup() as tasks:
            background = [
                tasks.create_task(members.run(), name="members"),
                tasks.create_task(discovery.run(), name="discovery"),
                tasks.create_task(
                    Healer(deployer).run(settings.heal_interval, settings.replan_grace), name="heal"
                ),
            ]
            if settings.mqtt:
                background.append(tasks.create_task(_presence(settings, members, registry), name="presence"))
            await stop.wait()
            log.info("coordinator_stopping")
            await health_servicer.enter_graceful_shutdown()
            await server.stop(grace=2.0)
            for task in background:
                task.cancel()
    finally:
        if http is not None:
            await http.cleanup()
        with contextlib.suppress(Exception):
            await server.stop(grace=None)


async def _presence(settings: CoordinatorSettings, members: Members, registry: Registry) -> None:
    """MQTT: a worker's offline status (but a drain's) marks it lost; joins, leaves and new plans are
    published as fleet events."""
    from edgeswarm.presence.fleet import FleetPresence

    def on_status(worker_id: str, status: dict[str, Any]) -> None:
        if status["state"] == "offline" and status.get("reason") != "drain":
            members.mark_lost(worker_id, f"mqtt status offline ({status.get('reason')})")

    events: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
    members.on_change.append(
        lambda info, state, why: events.put_nowait(
            ("joined" if state == UP else "left", {"id": info.id, "name": info.name, "reason": why})
        )
    )
    registry.on_plan.append(
        lambda model, version, why: events.put_nowait(
            ("plan_changed", {"model": model, "version": version, "reason": why})
        )
    )
    presence = FleetPresence(settings.mqtt, settings.fleet, on_status)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(presence.run(), name="mqtt")
        while True:
            kind, fields = await events.get()
            await presence.event(kind, **fields)


def _session_ender(members: Members) -> Callable[[str, str], None]:
    """Drops a finished generation's state on a worker, in the background (a worker gone since
    drops it with its process)."""
    ending: set[asyncio.Task[None]] = set()

    async def end(worker: str, session: str) -> None:
        with contextlib.suppress(EdgeswarmError, KeyError):
            await members.client(worker).end_session(session, timeout=5.0)

    def schedule(worker: str, session: str) -> None:
        task = asyncio.ensure_future(end(worker, session))
        ending.add(task)
        task.add_done_callback(ending.discard)

    return schedule


def _tokenizers(
    store: ModelStore,
) -> tuple[Callable[[Plan], Tokenizer | None], Callable[[Plan], ChatTemplate | None]]:
    """Each plan's tokenizer and chat template, read from the store once."""
    loaded: dict[str, tuple[Tokenizer, ChatTemplate | None]] = {}

    def load(plan: Plan) -> tuple[Tokenizer, ChatTemplate | None] | None:
        if not plan.tokenizer:
            return None
        if plan.tokenizer not in loaded:
            tokenizer = load_tokenizer(store.tokenizer_path(plan.tokenizer).read_bytes(), plan.model)
            config = store.tokenizer_config_path(plan.tokenizer)
            template = chat_template(config.read_bytes(), plan.model) if config.is_file() else None
            loaded[plan.tokenizer] = (tokenizer, template)
        return loaded[plan.tokenizer]

    def tokenizer_of(plan: Plan) -> Tokenizer | None:
        text = load(plan)
        return text[0] if text else None

    def template_of(plan: Plan) -> ChatTemplate | None:
        text = load(plan)
        return text[1] if text else None

    return tokenizer_of, template_of
