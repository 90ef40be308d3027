"""mDNS advertisement of a worker: `_edgeswarm._tcp.local.` with id, version and fleet in TXT."""

from __future__ import annotations

import socket

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from edgeswarm import __version__
from edgeswarm.mdns import SERVICE_TYPE


def service_info(worker_id: str, name: str, fleet: str, interface: str, port: int) -> AsyncServiceInfo:
    label = f"{name}-{worker_id[:8]}"
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(interface)],
        port=port,
        properties={"id": worker_id, "version": __version__, "fleet": fleet, "name": name, "key": ""},
        server=f"{label}.local.",
    )


class Advertiser:
    def __init__(self, interface: str) -> None:
        self._zc = AsyncZeroconf(interfaces=[interface], ip_version=IPVersion.V4Only)
        self._info: AsyncServiceInfo | None = None
        self._closed = False

    async def register(self, info: AsyncServiceInfo) -> None:
        self._info = info
        await self._zc.async_register_service(info, allow_name_change=True)

    async def close(self) -> None:
        """Sends the goodbye packet and closes the sockets; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._info is not None:
            await self._zc.async_unregister_service(self._info)
        await self._zc.async_close()
