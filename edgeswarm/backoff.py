"""Delays between attempts to reach something again (an MQTT broker): doubling, capped, reset on success."""

from __future__ import annotations


class Backoff:
    """Reconnect delays: `first` seconds, doubling up to `most`; `reset()` after a good connection."""

    def __init__(self, first: float = 0.5, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first
