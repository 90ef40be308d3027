"""`edgeswarm worker`: serve the Worker API and health, advertise over mDNS, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import statistics
import uuid
from collections import deque
from pathlib import Path

from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edgeswarm.channels import bind, check_insecure, new_server, secure_with, serve_metrics_on, split_address
from edgeswarm.config import WorkerSettings
from edgeswarm.errors import InvalidRequest
from edgeswarm.mdns import SERVICE_TYPE, choose_interface
from edgeswarm.metrics import WORKER_GFLOPS
from edgeswarm.security import enrollment
from edgeswarm.security.pki import Identity
from edgeswarm.security.roles import worker_authorizer
from edgeswarm.worker.advertise import Advertiser, service_info
from edgeswarm.worker.cache import ShardStore
from edgeswarm.worker.peers import Peers
from edgeswarm.worker.runtime import StageRuntime
from edgeswarm.worker.service import WorkerService, add_to_server
from edgeswarm.worker.sessions import SessionStore

log = logging.getLogger(__name__)

# Calibration readings a worker keeps; it reports their median.
CALIBRATIONS_KEPT = 3


def worker_id(cache_dir: Path) -> str:
    """A stable id kept beside the shard cache, so a restarted worker is the same worker."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / "worker-id"
    if path.is_file():
        return path.read_text().strip()
    new = uuid.uuid4().hex
    path.write_text(new + "\n")
    return new


async def serve(settings: WorkerSettings) -> None:
    interface = choose_interface(settings.interface, split_address(settings.listen)[0])
    settings = settings.model_copy(update={"interface": interface})
    wid = worker_id(settings.cache_dir)
    joined = None
    if settings.insecure:
        check_insecure(settings.listen)
    else:
        joined = await _identity(settings, wid)
        wid = joined[1]
        secure_with(joined[0])
    store = ShardStore(settings.cache_dir / "shards")
    if store.swept:
        log.info(
            "partial_shards_swept count=%d bytes=%d", len(store.swept), sum(size for _, size in store.swept)
        )
    runtime = StageRuntime(
        threads=settings.threads,
        concurrency=settings.concurrency,
        optimization=settings.optimization,
        optimized_dir=settings.cache_dir / "optimized",
    )
    peers = Peers(settings.max_message_bytes)
    service = WorkerService(wid, settings.name, settings.fleet, store, runtime, peers)
    service.cache_max_bytes = settings.cache_max_bytes
    service.memory_limit = settings.memory_limit
    service.profile_limit = settings.profile_limit
    service.decoding.store = SessionStore(settings.session_memory, settings.session_idle)
    calibrations = deque([await runtime.calibrate()], maxlen=CALIBRATIONS_KEPT)
    service.calibration_gflops = calibrations[0]
    WORKER_GFLOPS.labels(settings.name).set(service.calibration_gflops)
    health_servicer = health.aio.HealthServicer()

    server = new_server(settings.max_message_bytes, worker_authorizer() if joined else None)
    add_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = bind(server, settings.listen)
    serve_metrics_on(settings.metrics)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    log.info(
        "worker_serving id=%s name=%s fleet=%s address=%s:%d cached_shards=%d calibration_gflops=%.1f",
        wid, settings.name, settings.fleet, settings.interface, port, len(store.digests()),
        service.calibration_gflops,
    )  # fmt: skip
    advertiser = Advertiser(settings.interface)
    await advertiser.register(service_info(wid, settings.name, settings.fleet, settings.interface, port))
    log.info("worker_advertised service=%s fleet=%s", SERVICE_TYPE, settings.fleet)

    stop = asyncio.Event()
    reasons: list[str] = []
    health_updates: set[asyncio.Task[None]] = set()

    def saturation(saturated: bool) -> None:
        """A saturated pool takes no more requests: NOT_SERVING until a thread is free (unless draining)."""
        if stop.is_set():
            return
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if saturated
            else health_pb2.HealthCheckResponse.SERVING
        )
        update = asyncio.ensure_future(health_servicer.set("", status))
        health_updates.add(update)
        update.add_done_callback(health_updates.discard)

    runtime.on_saturation = saturation

    def drain(reason: str) -> None:
        reasons.append(reason)
        service.decoding.drain(wid)
        stop.set()

    service.drain = drain
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain, sig.name)
    presence = None
    if settings.mqtt:
        from edgeswarm.presence.worker import WorkerPresence

        address = f"{settings.interface}:{port}"
        presence = WorkerPresence(
            settings.mqtt, settings.fleet, wid, settings.name, address, service.telemetry,
            interval=settings.telemetry_interval,
        )  # fmt: skip
    try:
        async with asyncio.TaskGroup() as tasks:
            if presence is not None:
                tasks.create_task(presence.run(), name="presence")
            renewing = None
            if joined is not None:
                identity, _, coordinator = joined
                renewing = tasks.create_task(
                    enrollment.keep_renewed(identity, coordinator, settings.state_dir, secure_with),
                    name="renew",
                )
            recalibrating = None
            if settings.recalibrate_interval > 0:
                recalibrating = tasks.create_task(
                    _recalibrate(service, runtime, calibrations, settings.recalibrate_interval),
                    name="recalibrate",
                )
            await stop.wait()
            for task in (recalibrating, renewing):
                if task is not None:
                    task.cancel()
            log.info("worker_draining id=%s reason=%s in_flight=%d", wid, reasons[0], service.in_flight)
            await health_servicer.enter_graceful_shutdown()
            await advertiser.close()
            if presence is not None:
                await presence.offline("drain")
            await _finish_in_flight(service, settings.drain_notice, settings.drain_grace)
    finally:
        log.info("worker_stopping id=%s in_flight=%d", wid, service.in_flight)
        await health_servicer.enter_graceful_shutdown()
        await advertiser.close()
        await server.stop(grace=2.0)
        await peers.close()
        runtime.close()
        if runtime.overdue:
            # A pool thread is still inside a kernel that ignores the terminate flag; the interpreter
            # would wait for it at exit. Nothing else is left to finish.
            log.warning("worker_exiting stuck_runs=%d", len(runtime.overdue))
            logging.shutdown()
            os._exit(0)


async def _identity(settings: WorkerSettings, wid: str) -> tuple[Identity, str, str]:
    """This worker's fleet identity, its id (as its certificate names it) and its coordinator: from
    its state directory, or by joining with the token it was given."""
    kept = enrollment.load(settings.state_dir)
    if kept is not None:
        if settings.join:
            log.info("join_token_ignored reason=already_joined state_dir=%s", settings.state_dir)
        return kept
    if not settings.join:
        raise InvalidRequest(
            f"this worker has not joined a fleet (nothing in {settings.state_dir}): run it once with "
            "--join TOKEN (from `edgeswarm token create --role worker`), or with --insecure on 127.0.0.1"
        )
    return await enrollment.join(settings.join, settings.state_dir, wid)


async def _recalibrate(
    service: WorkerService, runtime: StageRuntime, calibrations: deque[float], interval: float
) -> None:
    """Every `interval` seconds while idle, calibrates again; reports the median of the last readings.

    A PC's capacity drifts (another program, thermal limits, a changed CPU quota): the coordinator
    re-reads the figure and re-plans when it moved. Returns when cancelled (at drain).
    """
    while True:
        await asyncio.sleep(interval)
        if service.in_flight:
            continue  # its own requests would read as less capacity
        calibrations.append(await runtime.calibrate())
        figure = statistics.median(calibrations)
        if figure != service.calibration_gflops:
            log.debug("calibrated gflops=%.1f readings=%s", figure, [round(c, 1) for c in calibrations])
        service.calibration_gflops = figure
        WORKER_GFLOPS.labels(service.name).set(figure)


async def _finish_in_flight(service: WorkerService, notice: float, grace: float) -> None:
    """Keeps serving for `notice` seconds (requests already routed here still arrive), then until none
    is in flight, for `grace` seconds in all at most."""
    await asyncio.sleep(min(notice, grace))
    try:
        await asyncio.wait_for(service.wait_idle(), max(grace - notice, 0.0))
    except TimeoutError:
        log.warning("drain_grace_passed in_flight=%d", service.in_flight)
