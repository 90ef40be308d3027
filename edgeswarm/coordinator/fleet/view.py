"""The coordinator's view of the fleet: which workers it knows and whether each is up. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeswarm.plans import WorkerState

UP = WorkerState.UP
DOWN = WorkerState.DOWN


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as discovery found it: its id, name, address and fleet."""

    id: str
    name: str
    address: str
    fleet: str = "default"


@dataclass(frozen=True)
class KnownWorker:
    info: WorkerInfo
    state: WorkerState = DOWN


@dataclass(frozen=True)
class FleetView:
    """Immutable; each change returns a new view."""

    workers: tuple[KnownWorker, ...] = ()

    def get(self, worker_id: str) -> KnownWorker | None:
        return next((w for w in self.workers if w.info.id == worker_id), None)

    def upsert(self, info: WorkerInfo) -> FleetView:
        """A worker found or re-found; its liveness is kept until health says otherwise."""
        current = self.get(info.id)
        if current is not None and current.info == info:
            return self
        state = current.state if current is not None and current.info.address == info.address else DOWN
        others = tuple(w for w in self.workers if w.info.id != info.id)
        return FleetView(tuple(sorted((*others, KnownWorker(info, state)), key=lambda w: w.info.id)))

    def mark(self, worker_id: str, state: WorkerState) -> FleetView:
        current = self.get(worker_id)
        if current is None or current.state == state:
            return self
        return FleetView(tuple(replace(w, state=state) if w is current else w for w in self.workers))

    def live(self) -> frozenset[str]:
        return frozenset(w.info.id for w in self.workers if w.state == UP)

    def address(self, worker_id: str) -> str:
        worker = self.get(worker_id)
        if worker is None:
            raise KeyError(worker_id)
        return worker.info.address
