"""mDNS as both daemons use it: the service type workers advertise and the coordinator browses, and
the address it binds to when none is given, chosen from local state only (no traffic sent)."""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from pathlib import Path

log = logging.getLogger(__name__)

# Workers advertise, and the coordinator browses for, this service type.
SERVICE_TYPE = "_edgeswarm._tcp.local."
SIOCGIFADDR = 0x8915
LOOPBACK = "127.0.0.1"


def default_route_interface(route_table: str) -> str | None:
    """The interface of the IPv4 default route in a /proc/net/route table."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


def routed_interface(route_table: str) -> str | None:
    """The interface of the default route, or else of the first route to a network (a LAN with no
    gateway); None when only loopback is routed."""
    default = default_route_interface(route_table)
    if default is not None:
        return default
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 1 and fields[0] != "lo":
            return fields[0]
    return None


def interface_address(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def choose_interface(configured: str, listen_host: str) -> str:
    """`configured` if set; else the listen host if it is one address; else the address of the default
    route's interface, or of the first routed one."""
    if configured:
        return configured
    try:
        if not ipaddress.ip_address(listen_host).is_unspecified:
            return listen_host
    except ValueError:
        pass
    try:
        name = routed_interface(Path("/proc/net/route").read_text())
    except OSError:
        name = None
    address = interface_address(name) if name else None
    if address is None:
        log.warning("no routed interface found; mDNS stays on %s (pass --interface to choose)", LOOPBACK)
        return LOOPBACK
    return address
