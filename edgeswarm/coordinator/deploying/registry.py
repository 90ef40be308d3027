"""The plans in force, what each deploy asked for, and the requests each plan is serving.

A request holds its plan (`serving`) until it finishes, so a plan replaced meanwhile is unloaded
only once it has drained (`drained`). Just after a start, a request for a model not yet known waits
for the workers to report the plans they hold (a restarted coordinator serves without a redeploy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from edgeswarm.coordinator.modelstore import StoredModel
from edgeswarm.coordinator.serving.route_choice import stages_without_workers
from edgeswarm.errors import InvalidRequest, NotFound
from edgeswarm.plans import Mode, Objective, Plan, Quantization

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployRequest:
    """What a deploy asked for, kept to re-plan the model when the fleet changes."""

    mode: Mode
    replicas: int
    stages: int
    model: StoredModel  # the files as sent, in the store
    objective: Objective = Objective.THROUGHPUT
    # For "auto": the live workers the plan was made for; a change re-plans.
    fleet: frozenset[str] = frozenset()
    batching: tuple[int, float] = (0, 0.0)  # most requests per call, longest wait in seconds
    # For "auto": each worker's calibration (GFLOP/s) when planned; a drift re-plans.
    calibrations: tuple[tuple[str, float], ...] = ()
    # The variant of `model` placed (None: the model as sent).
    quantization: Quantization | None = None
    # State pairs declared at deploy (output, input), beyond those the model's names tell.
    states: tuple[tuple[str, str], ...] = ()
    tokenizer: str = ""  # its sha256 in the store


class Registry:
    """`live()` is the set of workers up now; `recovery_window` the seconds after a start during which
    a request for an unknown model waits for the workers' plans."""

    def __init__(
        self, live: Callable[[], frozenset[str]], clock: Callable[[], float], recovery_window: float
    ) -> None:
        self.plans: dict[str, Plan] = {}
        self.requests: dict[str, DeployRequest] = {}
        # What the last deploy of each undeployed model asked, so a repository load places it again.
        self.retired: dict[str, DeployRequest] = {}
        # The planner's report of each model deployed with mode "auto".
        self.reports: dict[str, dict[str, Any]] = {}
        # Told of each new plan (model, version, why), and of an undeploy (version 0): fleet events.
        self.on_plan: list[Callable[[str, int, str], None]] = []
        self._live = live
        self._clock = clock
        self._running: Counter[tuple[str, int]] = Counter()
        self._drained = asyncio.Condition()
        self._recovering_until = clock() + recovery_window
        self._changed = asyncio.Event()

    def plan(self, name: str, version: str = "") -> Plan:
        """The current plan of `name`; `version`, when given, must be the current one."""
        try:
            plan = self.plans[name]
        except KeyError:
            known = ", ".join(sorted(self.plans)) or "none"
            raise NotFound(f"model {name!r} is not deployed (deployed: {known})") from None
        if version not in ("", str(plan.version)):
            raise InvalidRequest(f"model {name!r} is at version {plan.version}, not {version!r}")
        return plan

    def holding(self, sha256: str) -> Plan | None:
        """A current plan with the stage `sha256`."""
        return next((p for p in self.plans.values() if any(s.sha256 == sha256 for s in p.stages)), None)

    def in_use(self) -> set[str]:
        """Every stage a current plan has."""
        return {s.sha256 for p in self.plans.values() for s in p.stages}

    @contextlib.asynccontextmanager
    async def serving(self, name: str, version: str = "") -> AsyncIterator[Plan]:
        """The current plan of `name`, kept loaded until the block ends even if a new plan replaces it."""
        await self._await_recovery(name)
        plan = self.plan(name, version)
        key = (plan.model, plan.version)
        self._running[key] += 1
        try:
            yield plan
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
                async with self._drained:
                    self._drained.notify_all()

    async def drained(self, plan: Plan, timeout: float) -> None:
        """Returns once no request holds `plan`, or after `timeout` seconds (with a warning)."""
        key = (plan.model, plan.version)
        async with self._drained:
            try:
                await asyncio.wait_for(self._drained.wait_for(lambda: key not in self._running), timeout)
            except TimeoutError:
                log.warning("retire_timeout model=%s version=%d running=%d", *key, self._running[key])

    async def _await_recovery(self, name: str) -> None:
        """Just after a start, holds a request until its model's plan is known and every stage of some
        route has a live worker, or the recovery window closes."""
        while (wait := self._recovering_until - self._clock()) > 0:
            changed = self._changed  # taken before the check, so no change between is missed
            plan = self.plans.get(name)
            if plan is not None and not stages_without_workers(plan, self._live()):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    def announce(self, *_: object) -> None:
        """Wakes the requests waiting in `_await_recovery` (plans or workers changed)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def tell(self, name: str, version: int, why: str) -> None:
        """Tells the `on_plan` listeners of a new plan (version 0: undeployed)."""
        for listener in self.on_plan:
            listener(name, version, why)
