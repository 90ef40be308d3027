"""A worker that (re)joins gets back every stage the current plans give it; a coordinator that
restarted takes over, from the workers, the plans they hold that it does not know, and gives the
stages of a plan it took over to the plan's workers that joined before it knew the plan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.deploying.installer import Installer
from edgeswarm.coordinator.deploying.manifests import plan_of
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.worker_client import WorkerClient
from edgeswarm.security import routes

log = logging.getLogger(__name__)


Described = Iterable[tuple[str, WorkerClient, worker_pb2.WorkerDescription]]


class Recovery:
    def __init__(
        self, registry: Registry, installer: Installer, live: Callable[[], Described] = lambda: ()
    ) -> None:
        self.registry = registry
        self.installer = installer
        self.live = live  # the live workers, with their clients and last descriptions

    def _not_ours(self, manifest: worker_pb2.PlanManifest) -> str:
        """Why a plan a worker reports is not taken over (empty when it is): this coordinator did not
        issue it, or it names stages the store does not hold."""
        if not routes.plan_is_signed(manifest):
            return "its signature is not this coordinator's"
        unknown = [s.sha256[:12] for s in manifest.stages if not self.installer.store.has_stage(s.sha256)]
        if unknown:
            return f"it names stage(s) {', '.join(unknown)} this coordinator never cut"
        return ""

    async def reconcile(
        self, worker_id: str, client: WorkerClient, description: worker_pb2.WorkerDescription
    ) -> None:
        """Loads on a worker that (re)joined every stage the current plans give it.

        A plan the worker reports that is newer than this coordinator's (it restarted) is taken over first.
        """
        plans = self.registry.plans
        recovered = []
        for manifest in description.plans:
            known = plans.get(manifest.model)
            if known is None or known.version < manifest.version:
                why_not = self._not_ours(manifest)
                if why_not:
                    log.warning(
                        "reported_plan_ignored model=%s version=%d from=%s reason=%r",
                        manifest.model, manifest.version, worker_id[:8], why_not,
                    )  # fmt: skip
                    continue
                plans[manifest.model] = plan_of(manifest)
                recovered.append(manifest.model)
                log.info(
                    "model_recovered model=%s version=%d from=%s",
                    manifest.model,
                    manifest.version,
                    worker_id[:8],
                )
                self.registry.tell(manifest.model, manifest.version, f"recovered from worker {worker_id[:8]}")
                self.registry.announce()
        await self._restore(worker_id, client, description, list(plans))
        # Workers that joined before this coordinator knew the plans just taken over hold none of
        # their stages yet (a worker that lost its cache, say): they get them now, not at their
        # next restart.
        for other, other_client, other_description in self.live() if recovered else ():
            if other != worker_id:
                await self._restore(other, other_client, other_description, recovered)

    async def _restore(
        self,
        worker_id: str,
        client: WorkerClient,
        description: worker_pb2.WorkerDescription,
        models: Iterable[str],
    ) -> None:
        """Loads on the worker each stage of `models`' plans that it should hold and does not."""
        plans = self.registry.plans
        wanted = [
            s.sha256
            for model in models
            for s in plans[model].stages
            if worker_id in s.workers and s.sha256 not in description.loaded_stages
        ]
        if wanted:
            log.info("worker_restoring id=%s stages=%d", worker_id[:8], len(wanted))
            await self.installer.install(worker_id, client, wanted, set(description.cached_shards))
