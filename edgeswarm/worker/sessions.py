"""Generation sessions' state on a worker: per (session, stage), the tensors the next step reads.

One memory budget covers every session. A session that grows may push out the least recently used
others (their next step finds no state here, and the coordinator replays them elsewhere or here); a
new session may push out only sessions idle for `protect_s`, and is refused with RESOURCE_EXHAUSTED
when there is no such room. Sessions idle for `idle_s` are dropped. Pure: no I/O, a clock passed in.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edgeswarm.errors import NotFound, ResourceExhausted

# The session memory of a worker unless its settings say otherwise.
DEFAULT_SESSION_BYTES = 1024 * 1024 * 1024
# Ended sessions remembered, so that a step still under way when one ended keeps no state.
ENDED_KEPT = 100_000


@dataclass(frozen=True)
class State:
    tensors: Mapping[str, np.ndarray]  # by the input name the next step feeds them to
    position: int  # tokens the state holds
    nbytes: int


class SessionStore:
    def __init__(
        self,
        budget_bytes: int,
        idle_s: float = 300.0,
        protect_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_bytes = budget_bytes
        self.idle_s = idle_s
        self.protect_s = protect_s
        self.clock = clock
        # (session, stage) -> state, least recently used first, with when each was last used.
        self._states: OrderedDict[tuple[str, str], tuple[State, float]] = OrderedDict()
        self.nbytes = 0
        # Sessions ended here, most recent last: a step of one still under way when it ended (a
        # client gone mid-step) keeps no state. Session ids are never reused.
        self._ended: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len({session for session, _ in self._states})

    def get(self, session: str, stage: str) -> State | None:
        self.sweep()
        entry = self._states.get((session, stage))
        if entry is None:
            return None
        self._states[(session, stage)] = (entry[0], self.clock())
        self._states.move_to_end((session, stage))
        return entry[0]

    def put(self, session: str, stage: str, tensors: Mapping[str, np.ndarray], position: int) -> State:
        """Keeps `tensors` as the session's state at `stage` (replacing what it held); NotFound for a
        session that has ended."""
        self.sweep()
        if session in self._ended:
            raise NotFound(f"session {session[:12]} has ended")
        nbytes = sum(int(t.nbytes) for t in tensors.values())
        if nbytes > self.budget_bytes:
            raise ResourceExhausted(
                f"session {session[:12]} needs {nbytes} bytes of state at stage {stage[:12]}, "
                f"more than this worker's session memory of {self.budget_bytes} bytes"
            )
        old = self._states.pop((session, stage), None)
        if old is not None:
            self.nbytes -= old[0].nbytes
        starting = not any(s == session for s, _ in self._states) and old is None
        self._make_room(nbytes, session, only_idle=starting)
        state = State(dict(tensors), position, nbytes)
        self._states[(session, stage)] = (state, self.clock())
        self.nbytes += nbytes
        return state

    def end(self, session: str) -> bool:
        """Drops the session's state and keeps none it would be given after; whether it held any."""
        self._ended[session] = None
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        return self._drop(session)

    def _drop(self, session: str) -> bool:
        keys = [key for key in self._states if key[0] == session]
        for key in keys:
            self.nbytes -= self._states.pop(key)[0].nbytes
        return bool(keys)

    def sweep(self) -> list[str]:
        """Drops the sessions idle for idle_s; returns their ids."""
        now = self.clock()
        idle = {s for (s, _), (_, used) in self._states.items() if now - used >= self.idle_s}
        for session in idle:
            self._drop(session)
        return sorted(idle)

    def _make_room(self, nbytes: int, session: str, only_idle: bool) -> None:
        now = self.clock()
        while self.nbytes + nbytes > self.budget_bytes:
            victim = next(
                (
                    s
                    for (s, _), (_, used) in self._states.items()
                    if s != session and (not only_idle or now - used >= self.protect_s)
                ),
                None,
            )
            if victim is None:
                raise ResourceExhausted(
                    f"no room for a new session: {len(self)} session(s) hold {self.nbytes} of this "
                    f"worker's {self.budget_bytes} bytes of session memory, all in use; "
                    "retry later or add workers"
                )
            self._drop(victim)
