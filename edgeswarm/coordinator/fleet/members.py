"""The live fleet: a client per worker, a health stream per worker, the ban list and in-flight counts.

A worker counts as up only once its health stream says SERVING and every stage the current plans
give it is loaded there again (a restarted worker reloads from its disk cache or gets the shard anew).
Every call to a worker goes through its `WorkerClient`; `connect` makes one (a fake in unit tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.fleet.bans import BanList
from edgeswarm.coordinator.fleet.view import DOWN, UP, FleetView, WorkerInfo
from edgeswarm.coordinator.worker_client import SERVING, GrpcWorkerClient, WorkerClient, status_name
from edgeswarm.errors import EdgeswarmError, InternalError, NotFound, PermissionDenied
from edgeswarm.metrics import WORKERS
from edgeswarm.plans import WorkerState

log = logging.getLogger(__name__)

# Called when a worker comes up, to load what the plans give it; raises to keep it down.
Reconcile = Callable[[str, WorkerClient, worker_pb2.WorkerDescription], Awaitable[None]]
# Longest wait for a known worker to answer at an address its record moved to.
MOVE_CHECK_TIMEOUT_S = 3.0

# Makes the client of a worker found at an address.
Connect = Callable[[WorkerInfo], WorkerClient]


class Members:
    def __init__(
        self,
        settings: CoordinatorSettings,
        clock: Callable[[], float] = time.monotonic,
        connect: Connect | None = None,
        reconcile: Reconcile | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._connect = connect or (
            lambda info: GrpcWorkerClient(info.address, settings.max_message_bytes, info.id[:8], info.id)
        )
        self._reconcile = reconcile
        self.view = FleetView()
        self.bans = BanList(settings.ban_initial, settings.ban_max)
        self.in_flight: Counter[str] = Counter()
        self.clients: dict[str, WorkerClient] = {}
        self.descriptions: dict[str, worker_pb2.WorkerDescription] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._watched: set[str] = set()
        self._refusals: dict[str, str] = {}
        # Records (id@address) that claimed a known worker's id and were not it: logged once.
        self._ignored: set[str] = set()
        # Last status each health stream sent, and the workers whose probe went unanswered.
        self._health: dict[str, int] = {}
        self._unanswered: set[str] = set()
        self.down_since: dict[str, float] = {}
        # Called with a worker's id when it is lost (not when it drains): the router abandons its requests.
        self.on_lost: list[Callable[[str], None]] = []
        # Called on each change of a worker's state with (info, new state, why): fleet events.
        self.on_change: list[Callable[[WorkerInfo, WorkerState, str], None]] = []
        # Workers whose token was revoked: never taken in again.
        self.revoked: set[str] = set()
        # How workers reach this coordinator; set once the server is bound.
        self.address_for_workers = ""

    async def run(self) -> None:
        """Holds the health watchers; returns only when cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            for worker_id in self.clients:
                self._start_watch(worker_id)
            try:
                await asyncio.Event().wait()
            finally:
                self._tasks = None
                for client in self.clients.values():
                    await client.close()

    async def found(self, info: WorkerInfo) -> None:
        """Discovery found `info`: connect and watch its health, or follow a changed address."""
        known = self.view.get(info.id)
        if known is not None and known.info.address == info.address:
            self.view = self.view.upsert(info)
            return
        client = self._connect(info)
        if known is not None and not await self._answers_as(info, client):
            await client.close()
            return
        self.view = self.view.upsert(info)
        old = self.clients.get(info.id)
        self.clients[info.id] = client
        log.info("worker_found id=%s name=%s address=%s", info.id[:8], info.name, info.address)
        if old is not None:
            await old.close()
        self._start_watch(info.id)

    async def _answers_as(self, info: WorkerInfo, client: WorkerClient) -> bool:
        """Whether the worker at a known id's new address is that worker (over TLS, its certificate
        names the id): mDNS only says where to look, so a record anyone can publish moves nothing."""
        try:
            description = await client.describe(self.address_for_workers, timeout=MOVE_CHECK_TIMEOUT_S)
        except EdgeswarmError as exc:
            why = f"{exc.code.name}: {exc.message}"
        else:
            if description.id == info.id:
                return True
            why = f"it answers as worker {description.id[:8]}"
        key = f"{info.id}@{info.address}"
        if key not in self._ignored:
            self._ignored.add(key)
            log.warning("worker_record_ignored id=%s address=%s reason=%r", info.id[:8], info.address, why)
        return False

    def _start_watch(self, worker_id: str) -> None:
        """One health watcher per worker for the coordinator's life; it follows the worker's current link."""
        if self._tasks is not None and worker_id not in self._watched:
            self._watched.add(worker_id)
            self._tasks.create_task(self._watch(worker_id), name=f"health-{worker_id[:8]}")
            self._tasks.create_task(self._probe(worker_id), name=f"probe-{worker_id[:8]}")

    async def _watch(self, worker_id: str) -> None:
        """Follows the worker's health stream for the coordinator's life, re-opening it when it ends."""
        while True:
            client = self.clients[worker_id]
            try:
                refusal = await self._follow(worker_id, client)
            except EdgeswarmError as exc:
                self._health.pop(worker_id, None)
                self._set(worker_id, DOWN, f"health stream: {exc.code.name}", lost=True)
            else:
                if refusal is None:
                    self._health.pop(worker_id, None)
                    self._set(worker_id, DOWN, "health stream ended", lost=True)
                else:
                    self._set(worker_id, DOWN, refusal)
                    if self._refusals.get(worker_id) != refusal:
                        log.warning("worker_refused id=%s reason=%r", worker_id[:8], refusal)
                        self._refusals[worker_id] = refusal
            await asyncio.sleep(self.settings.health_retry)

    async def _follow(self, worker_id: str, client: WorkerClient) -> str | None:
        """Reads the health stream until it ends (None) or the worker cannot be taken in (why not);
        EdgeswarmError when the stream breaks."""
        async for status in client.watch_health():
            self._health[worker_id] = status
            if status != SERVING:
                # NOT_SERVING: draining; what it holds now still finishes.
                self._set(worker_id, DOWN, f"health {status_name(status)}")
            elif worker_id not in self._unanswered:
                try:
                    await self._came_up(worker_id, client)
                except EdgeswarmError as exc:
                    return exc.message
        return None

    async def _probe(self, worker_id: str) -> None:
        """Checks health every probe_interval: a worker that stops answering is lost, not just slow to say so.

        A frozen process or a cut link closes no stream; only a check that gets no answer shows it.
        Every describe_interval it also re-reads the worker's description (its figures may drift).
        """
        described = self.clock()
        while True:
            await asyncio.sleep(self.settings.probe_interval)
            client = self.clients[worker_id]
            try:
                await client.check_health(self.settings.probe_timeout)
            except EdgeswarmError as exc:
                if self._health.get(worker_id) == SERVING and worker_id not in self._unanswered:
                    self._unanswered.add(worker_id)
                    self._set(worker_id, DOWN, f"health check: {exc.code.name}", lost=True)
                continue
            if worker_id in self._unanswered:
                self._unanswered.discard(worker_id)
                if self._health.get(worker_id) == SERVING:
                    try:
                        await self._came_up(worker_id, client)
                    except EdgeswarmError as exc:
                        self._set(worker_id, DOWN, f"rejoin: {exc.message}")
                described = self.clock()
            elif self._due(described) and worker_id in self.live():
                described = self.clock()
                await self._redescribe(worker_id, client)

    def _due(self, since: float) -> bool:
        interval = self.settings.describe_interval
        return interval > 0 and self.clock() - since >= interval

    async def _redescribe(self, worker_id: str, client: WorkerClient) -> None:
        """Keeps the worker's newest description; a failure here is the health checks' business."""
        with contextlib.suppress(EdgeswarmError):
            self.descriptions[worker_id] = await self._describe(
                worker_id, client, self.settings.probe_timeout
            )

    async def _describe(
        self, worker_id: str, client: WorkerClient, timeout: float
    ) -> worker_pb2.WorkerDescription:
        """The worker's description; InternalError when whoever answers at its address is not it."""
        description = await client.describe(self.address_for_workers, timeout)
        if description.id != worker_id or description.fleet != self.settings.fleet:
            # A stale mDNS record can point at an address another worker has taken since.
            raise InternalError(
                f"{client.address} answers as worker {description.id[:8]} of fleet "
                f"{description.fleet!r}, not {worker_id[:8]} of {self.settings.fleet!r}"
            )
        return description

    async def _came_up(self, worker_id: str, client: WorkerClient) -> None:
        if worker_id in self.revoked:
            raise PermissionDenied(f"worker {worker_id[:8]}'s token was revoked")
        description = await self._describe(worker_id, client, timeout=10)
        self.descriptions[worker_id] = description
        if self._reconcile is not None:
            await self._reconcile(worker_id, client, description)
        self._set(worker_id, UP, "health SERVING")

    def _set(self, worker_id: str, state: WorkerState, why: str, lost: bool = False) -> None:
        before = self.view.get(worker_id)
        self.view = self.view.mark(worker_id, state)
        for each in (UP, DOWN):
            WORKERS.labels(each).set(sum(w.state == each for w in self.view.workers))
        if before is not None and before.state != state:
            log.info("worker_%s id=%s name=%s reason=%r", state, worker_id[:8], before.info.name, why)
            if state == UP:
                self.bans.forgive(worker_id)
                self.down_since.pop(worker_id, None)
            else:
                self.down_since.setdefault(worker_id, self.clock())
            for tell in self.on_change:
                tell(before.info, state, why)
        if lost and state == DOWN:
            for listener in self.on_lost:
                listener(worker_id)

    def mark_lost(self, worker_id: str, why: str) -> None:
        """Another layer (MQTT presence) says the worker is gone; health brings it back when it answers."""
        if self.view.get(worker_id) is not None:
            self._unanswered.add(worker_id)
            self._set(worker_id, DOWN, why, lost=True)

    def find(self, worker: str) -> WorkerInfo:
        """The worker named `worker`, or with that id or unique id prefix; NotFound if none."""
        infos = [w.info for w in self.view.workers]
        exact = [i for i in infos if worker in (i.id, i.name)]
        matches = exact or [i for i in infos if worker and i.id.startswith(worker)]
        if len(matches) != 1:
            known = ", ".join(f"{i.name} ({i.id[:8]})" for i in infos) or "none"
            what = "matches several workers" if matches else "is no worker of this fleet"
            raise NotFound(f"{worker!r} {what} (workers: {known})")
        return matches[0]

    def live(self) -> frozenset[str]:
        return self.view.live()

    def live_described(self) -> list[tuple[str, WorkerClient, worker_pb2.WorkerDescription]]:
        """Each live worker with its client and its last description."""
        return [
            (w, self.clients[w], self.descriptions[w])
            for w in sorted(self.live())
            if w in self.clients and w in self.descriptions
        ]

    def revoke(self, worker_id: str) -> None:
        """Drops a worker whose token was revoked, now and whenever it comes back."""
        self.revoked.add(worker_id)
        if self.view.get(worker_id) is not None:
            self._set(worker_id, DOWN, "its token was revoked", lost=True)
        log.warning("worker_revoked id=%s", worker_id[:8])

    def banned(self, worker_id: str) -> bool:
        return self.bans.banned(worker_id, self.clock())

    def ban(self, worker_id: str) -> float:
        return self.bans.ban(worker_id, self.clock())

    def forgive(self, worker_id: str) -> None:
        self.bans.forgive(worker_id)

    def address(self, worker_id: str) -> str:
        return self.view.address(worker_id)

    def client(self, worker_id: str) -> WorkerClient:
        return self.clients[worker_id]
