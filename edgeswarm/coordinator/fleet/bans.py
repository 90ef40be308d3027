"""Failed workers, left out of routes for a while. Pure: the caller passes the time."""

from __future__ import annotations

from dataclasses import dataclass


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
