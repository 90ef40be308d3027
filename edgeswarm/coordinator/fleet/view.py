"""The coordinator's view of the fleet, and the ban list of failed workers. Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeswarm.plans import WorkerInfo

UP = "up"
DOWN = "down"


@dataclass(frozen=True)
class WorkerState:
    info: WorkerInfo
    state: str = DOWN


@dataclass(frozen=True)
class FleetView:
    """Immutable; each change returns a new view."""

    workers: tuple[WorkerState, ...] = ()

    def get(self, worker_id: str) -> WorkerState | None:
        return next((w for w in self.workers if w.info.id == worker_id), None)

    def upsert(self, info: WorkerInfo) -> FleetView:
        """A worker found or re-found; its liveness is kept until health says otherwise."""
        current = self.get(info.id)
        if current is not None and current.info == info:
            return self
        state = current.state if current is not None and current.info.address == info.address else DOWN
        others = tuple(w for w in self.workers if w.info.id != info.id)
        return FleetView(tuple(sorted((*others, WorkerState(info, state)), key=lambda w: w.info.id)))

    def mark(self, worker_id: str, state: str) -> FleetView:
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


@dataclass
class BanList:
    """Failed workers are left out of routes for a time that doubles with each failure in a row."""

    initial: float = 0.5
    maximum: float = 30.0

    def __post_init__(self) -> None:
        self._until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}

    def ban(self, worker_id: str, now: float) -> float:
        """Bans `worker_id` from `now`; returns the ban's length in seconds."""
        if self._until.get(worker_id, 0.0) > now:
            return self._until[worker_id] - now
        strikes = self._strikes.get(worker_id, 0)
        length = min(self.initial * 2.0**strikes, self.maximum)
        self._strikes[worker_id] = strikes + 1
        self._until[worker_id] = now + length
        return length

    def banned(self, worker_id: str, now: float) -> bool:
        return self._until.get(worker_id, 0.0) > now

    def remaining(self, worker_id: str, now: float) -> float:
        return max(0.0, self._until.get(worker_id, 0.0) - now)

    def forgive(self, worker_id: str) -> None:
        """A worker that served a request again starts from the first ban length next time."""
        self._strikes.pop(worker_id, None)
