"""Putting stages onto workers: send each shard a worker lacks, then load it with its plan's manifest.

The shards of every plan in force are kept here by sha256, so a worker that restarted and lost its
cache is sent them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from edgeswarm.coordinator.deploying.manifests import manifest_of
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.worker_client import SHARD_TIMEOUT_S, WorkerClient
from edgeswarm.errors import EdgeswarmError, StageUnavailable
from edgeswarm.plans import Plan

log = logging.getLogger(__name__)

UNLOAD_TIMEOUT_S = 5.0


class Installer:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.shards: dict[str, bytes] = {}

    async def install(
        self,
        worker_id: str,
        client: WorkerClient,
        digests: Sequence[str],
        cached: set[str] | None = None,
        plan: Plan | None = None,
    ) -> None:
        """Loads `digests` on the worker, sending those not in `cached` (asked for when None). Each
        stage is loaded with the manifest of `plan`, or of the current plan holding it."""
        if cached is None:
            cached = set((await client.describe()).cached_shards)
        for sha in digests:
            if sha not in cached:
                data = self.shards.get(sha)
                if data is None:
                    raise StageUnavailable(
                        f"worker {worker_id[:8]} lost shard {sha[:12]}, which this coordinator never had "
                        "(it took the plan over after a restart): deploy the model again"
                    )
                await client.put_shard(sha, data, SHARD_TIMEOUT_S)
            owner = plan or self.registry.holding(sha)
            await client.load_stage(sha, manifest_of(owner) if owner else None, SHARD_TIMEOUT_S)

    async def unload(self, sha256: str, workers: Iterable[tuple[str, WorkerClient]]) -> None:
        """Unloads a stage from `workers` (id, client) and forgets its shard; a worker that cannot be
        reached is skipped."""
        self.shards.pop(sha256, None)
        for worker_id, client in workers:
            try:
                await client.unload_stage(sha256, UNLOAD_TIMEOUT_S)
            except EdgeswarmError as exc:
                log.warning("unload_failed worker=%s error=%s", worker_id[:8], exc.code.name)
