"""Keeping deployed models placed on the fleet that is there: a model is planned again when a worker
it uses has been down past a grace period, when the live fleet can now come closer to what its deploy
asked for, or (placed by measurement) when a worker's calibration drifted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from edgeswarm.coordinator.deploying.deployer import Deployer
from edgeswarm.coordinator.deploying.registry import DeployRequest
from edgeswarm.coordinator.planning.measure import drifted
from edgeswarm.coordinator.planning.placement import fitted_shape
from edgeswarm.errors import EdgeswarmError
from edgeswarm.plans import Mode, Plan

log = logging.getLogger(__name__)


def replan_reason(
    plan: Plan,
    request: DeployRequest,
    live: frozenset[str],
    down_since: Mapping[str, float],
    now: float,
    grace: float,
    calibrations: Mapping[str, float],
) -> str | None:
    """Why `plan` should be planned again now, or None. Pure.

    `down_since` gives when each worker went down; `calibrations` each live worker's figure now.
    """
    gone = sorted(w for w in plan.workers if w not in live and now - down_since.get(w, now) >= grace)
    if request.mode is Mode.AUTO:
        # A change of the fleet counts once it has settled: a worker down within its grace is
        # still counted, one that joined counts at once.
        settled = live | {w for w in request.fleet if w not in live and w not in gone}
        grows = settled != request.fleet and not gone
        moved = drifted(dict(request.calibrations), calibrations)
    else:
        count, per_stage = fitted_shape(request.mode, request.replicas, request.stages, len(live))
        # Grow back only with every worker of the plan up: one that is down may yet return.
        grows = count * per_stage > len(plan.workers) and plan.workers <= live
        moved = {}
    if gone:
        return f"workers gone: {', '.join(w[:8] for w in gone)}"
    if grows:
        return f"{len(live)} workers live"
    if moved:
        return "figures changed: " + ", ".join(
            f"{w[:8]} {a:.1f} -> {b:.1f} GFLOP/s" for w, (a, b) in moved.items()
        )
    return None


class Healer:
    def __init__(self, deployer: Deployer) -> None:
        self.deployer = deployer

    async def run(self, interval: float, grace: float) -> None:
        """Every `interval` seconds, heals each deployed model (see `heal`). Returns when cancelled."""
        while True:
            await asyncio.sleep(interval)
            for name in list(self.deployer.registry.plans):
                try:
                    await self.heal(name, grace)
                except EdgeswarmError as exc:
                    log.warning("replan_failed model=%s error=%r", name, exc.message)

    async def heal(self, name: str, grace: float) -> Plan | None:
        """Plans `name` again if `replan_reason` gives a reason; the new plan, or None."""
        registry, members = self.deployer.registry, self.deployer.members
        plan, request = registry.plans.get(name), registry.requests.get(name)
        live = members.live()
        if plan is None or request is None or not live:
            return None
        calibrations = dict(self.deployer.calibrations(live))
        why = replan_reason(plan, request, live, members.down_since, members.clock(), grace, calibrations)
        if why is None:
            return None
        log.info("replanning model=%s version=%d reason=%r", name, plan.version, why)
        return await self.deployer.redeploy(name, why)
