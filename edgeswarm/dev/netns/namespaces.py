"""Network namespaces of a test fleet, by name: finding, sweeping and purging them,
and reserving a free id and subnet for a new `Network` (network.py). Every name carries the network's
short id, so parallel runs never clash, and what a killed run left behind is removed by the next."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import logging
import os
import random
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.cgroups import (
    cgroups_of,
    remove_cgroup,
)
from edgeswarm.dev.netns.kernel import KILL_TIMEOUT, FleetError, kill_all

logger = logging.getLogger(__name__)

RUN_DIR = Path("/run/edgeswarm-fleet") if Path("/run").is_dir() else Path("/tmp/edgeswarm-fleet")
HOST_INTERFACE = "eth0"
MULTICAST = "224.0.0.0/4"
HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
NET_ID = re.compile(r"[0-9a-f]{4}")

Process = subprocess.Popen[bytes]


class CommandError(FleetError):
    """An `ip`/`tc` command failed; the message carries the command line and its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"`{shlex.join(argv)}` exited {returncode}: {stderr.strip()}")


def run(*argv: str, check: bool = True) -> str:
    """Runs one command, logged at debug level; its stdout, or CommandError when `check` and it fails."""
    logger.debug("run: %s", shlex.join(argv))
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise CommandError(list(argv), result.returncode, result.stderr)
    return result.stdout


def switch_ns(net_id: str) -> str:
    return f"es-{net_id}"


def host_ns(net_id: str, name: str) -> str:
    return f"es-{net_id}-{name}"


def root_link(net_id: str) -> str:
    """The root namespace's end of the veth to the bridge."""
    return f"es{net_id}r"


def namespaces() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    return [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]


def namespaces_of(net_id: str) -> list[str]:
    """The namespaces of network `net_id`: its switch and its hosts."""
    switch = switch_ns(net_id)
    return [ns for ns in namespaces() if ns == switch or ns.startswith(switch + "-")]


def namespace_pids(ns: str) -> set[int]:
    """Processes in namespace `ns`; empty when the namespace is gone."""
    return {int(pid) for pid in run("ip", "netns", "pids", ns, check=False).split()}


def link_exists(name: str) -> bool:
    """Whether the root namespace has an interface called `name`."""
    return bool(run("ip", "-o", "link", "show", "dev", name, check=False).strip())


def purge(net_id: str) -> None:
    """Removes everything named after network `net_id`: processes, namespaces, root veth, cgroups."""
    names = namespaces_of(net_id)
    for ns in names:
        kill_all(namespace_pids(ns))
    wait_until(lambda: not any(namespace_pids(ns) for ns in names), KILL_TIMEOUT, f"processes of {net_id}")
    if link_exists(root_link(net_id)):
        run("ip", "link", "del", root_link(net_id))
    for ns in sorted(names, key=len, reverse=True):
        run("ip", "netns", "del", ns)
    for group in cgroups_of(net_id):
        remove_cgroup(group)


@contextlib.contextmanager
def run_dir_lock(name: str) -> Iterator[None]:
    """An exclusive lock across processes, e.g. around choosing a subnet and claiming it."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with (RUN_DIR / name).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def process_stamp(pid: int) -> str | None:
    """`pid` and its start time, which together name one process even when pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return f"{pid} {stat.rpartition(')')[2].split()[19]}"


def owner_alive(owner: Path) -> bool:
    """Whether the process that wrote the owner file `owner` still runs."""
    try:
        stamp = owner.read_text().strip()
    except FileNotFoundError:
        return True
    pid = stamp.split()[0] if stamp else ""
    return pid.isdigit() and process_stamp(int(pid)) == stamp


def sweep() -> list[str]:
    """Tears down networks whose process died without teardown (e.g. SIGKILL); the ids it removed."""
    swept = []
    with run_dir_lock("sweep.lock"):
        for owner in sorted(RUN_DIR.glob("[0-9a-f]" * 4)):
            if owner_alive(owner):
                continue
            logger.info("sweeping network %s left by a dead process", owner.name)
            purge(owner.name)
            owner.unlink(missing_ok=True)
            swept.append(owner.name)
    return swept


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the root namespace routes or has an address in, default route aside."""
    routes = json.loads(run("ip", "-4", "-j", "route", "show", "table", "all") or "[]")
    addresses = json.loads(run("ip", "-4", "-j", "addr", "show") or "[]")
    prefixes = [r["dst"] for r in routes if r.get("dst", "default") != "default"]
    used = [ipaddress.IPv4Network(prefix, strict=False) for prefix in prefixes]
    for interface in addresses:
        for a in interface.get("addr_info", []):
            if "local" in a:
                used.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.X.Y.0/24 that overlaps nothing the root namespace routes or is addressed in."""
    used = used_networks()
    for _ in range(1000):
        candidate = ipaddress.IPv4Network(f"10.{random.randrange(256)}.{random.randrange(256)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise FleetError("no free 10.X.Y.0/24 subnet in the root namespace")


def reserve_id() -> tuple[str, Path]:
    """A 4-hex-digit id no other network uses, and the owner file that claims it for this process."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    stamp = process_stamp(os.getpid())
    draft = RUN_DIR / f".draft-{os.getpid()}-{secrets.token_hex(4)}"
    draft.write_text(f"{stamp}\n")
    try:
        while True:
            net_id = secrets.token_hex(2)
            owner = RUN_DIR / net_id
            try:
                os.link(draft, owner)
            except FileExistsError:
                continue
            if not namespaces_of(net_id) and not link_exists(root_link(net_id)):
                return net_id, owner
            owner.unlink()
    finally:
        draft.unlink()


@functools.cache
def unavailable() -> str | None:
    """None when this machine can run a `Network` (root, `ip netns`, bridges, veths, tbf); else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    probe = f"es-probe-{secrets.token_hex(3)}"
    try:
        run("ip", "netns", "add", probe)
        try:
            run("ip", "-n", probe, "link", "add", "probe0", "type", "bridge", "mcast_snooping", "0")
            run("ip", "-n", probe, "link", "add", "probe1", "type", "veth", "peer", "name", "probe2")
            tbf = ("root", "tbf", "rate", "1mbit", "burst", "32768", "latency", "50ms")
            run("tc", "-n", probe, "qdisc", "replace", "dev", "probe1", *tbf)
        finally:
            run("ip", "netns", "del", probe, check=False)
    except CommandError as e:
        return f"cannot build namespaced networks here: {e}"
    return None
