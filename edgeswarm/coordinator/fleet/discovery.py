"""Finding workers over mDNS. Discovery only finds; health streams decide who is alive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edgeswarm.coordinator.fleet.view import WorkerInfo
from edgeswarm.mdns import SERVICE_TYPE

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT_MS = 3000
# A worker whose records do not answer in time (a lost mDNS packet) is asked for again after
# RESOLVE_RETRY_S, then twice that, and so on, RESOLVE_TRIES times in all.
RESOLVE_RETRY_S = 2.0
RESOLVE_TRIES = 5


def worker_from(info: AsyncServiceInfo) -> WorkerInfo | None:
    """The worker a resolved record describes, or None when the record lacks what we need."""
    props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not props.get("id") or not addresses or not info.port:
        return None
    return WorkerInfo(
        id=props["id"],
        name=props.get("name", ""),
        address=f"{addresses[0]}:{info.port}",
        fleet=props.get("fleet", "default"),
    )


class Discovery:
    def __init__(self, interface: str, fleet: str, found: Callable[[WorkerInfo], Awaitable[None]]) -> None:
        self.interface = interface
        self.fleet = fleet
        self._found = found
        self._names: asyncio.Queue[str] = asyncio.Queue()
        self._failed: dict[str, int] = {}  # service name -> resolves that went unanswered in a row

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            log.info("mdns_goodbye service=%s", name)
            self._failed.pop(name, None)
        else:
            self._names.put_nowait(name)

    async def run(self) -> None:
        zc = AsyncZeroconf(interfaces=[self.interface], ip_version=IPVersion.V4Only)
        browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[self._on_change])
        try:
            while True:
                name = await self._names.get()
                await self._resolve(zc, name)
        finally:
            await browser.async_cancel()
            await zc.async_close()

    async def _resolve(self, zc: AsyncZeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(zc.zeroconf, RESOLVE_TIMEOUT_MS):
            self._ask_again(name)
            return
        self._failed.pop(name, None)
        worker = worker_from(info)
        if worker is None:
            log.warning("mdns_incomplete service=%s", name)
        elif worker.fleet != self.fleet:
            log.debug("mdns_other_fleet service=%s fleet=%s", name, worker.fleet)
        else:
            await self._found(worker)

    def _ask_again(self, name: str) -> None:
        """The browser reports a service once: an unanswered resolve must not lose the worker for good."""
        failed = self._failed[name] = self._failed.get(name, 0) + 1
        if failed >= RESOLVE_TRIES:
            del self._failed[name]
            log.warning("mdns_unresolved service=%s tries=%d giving_up", name, failed)
            return
        delay = RESOLVE_RETRY_S * 2 ** (failed - 1)
        log.warning("mdns_unresolved service=%s tries=%d again_in_s=%.1f", name, failed, delay)
        asyncio.get_running_loop().call_later(delay, self._again, name)

    def _again(self, name: str) -> None:
        if name in self._failed:  # not said goodbye, nor resolved since
            self._names.put_nowait(name)
