"""How a request's time is shared along its route. Pure.

Each hop forwards with a little less time than it has, so that when the next hop is stuck the one
before it still has time to say who was, instead of every hop's deadline passing at once.
"""

from __future__ import annotations

# Seconds of its own time a hop keeps back when it forwards (at most a tenth of what it has).
MARGIN_S = 0.25


def margin(timeout: float) -> float:
    return min(MARGIN_S, timeout / 10)


def onward(timeout: float | None) -> float | None:
    """The time the next hop gets when this one has `timeout` seconds left (None: no deadline)."""
    return None if timeout is None else timeout - margin(timeout)
