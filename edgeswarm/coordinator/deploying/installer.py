"""Putting stages onto workers: send each file of a stage a worker lacks, from the model store on
disk, then load it with its plan's manifest.

The store keeps the stages of every plan in force across restarts, so a worker that lost its cache
is sent them again, by this coordinator or by one that started after the deploy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from edgeswarm.coordinator.deploying.manifests import manifest_of
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.modelstore import ModelStore
from edgeswarm.coordinator.worker_client import SHARD_TIMEOUT_S, WorkerClient
from edgeswarm.errors import EdgeswarmError, NotFound, StageUnavailable
from edgeswarm.plans import Plan

log = logging.getLogger(__name__)

UNLOAD_TIMEOUT_S = 5.0


class Installer:
    def __init__(self, registry: Registry, store: ModelStore) -> None:
        self.registry = registry
        self.store = store

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
                try:
                    files = self.store.stage_files(sha)
                except NotFound as exc:
                    raise StageUnavailable(
                        f"worker {worker_id[:8]} lost stage {sha[:12]}, and {exc.message}: deploy the "
                        "model again"
                    ) from exc
                for file_sha, path, external_data in files:
                    if file_sha not in cached:
                        await client.put_file(file_sha, path, external_data, SHARD_TIMEOUT_S)
            owner = plan or self.registry.holding(sha)
            await client.load_stage(sha, manifest_of(owner) if owner else None, SHARD_TIMEOUT_S)

    async def unload(self, sha256: str, workers: Iterable[tuple[str, WorkerClient]]) -> None:
        """Unloads a stage from `workers` (id, client); a worker that cannot be reached is skipped. The
        store keeps the stage until its room is needed."""
        for worker_id, client in workers:
            try:
                await client.unload_stage(sha256, UNLOAD_TIMEOUT_S)
            except EdgeswarmError as exc:
                log.warning("unload_failed worker=%s error=%s", worker_id[:8], exc.code.name)
