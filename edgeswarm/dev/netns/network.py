"""A fleet of hosts in network namespaces on one bridge, with faults to inject.

Each `Host` is a network namespace wired to a Linux bridge that lives in a "switch" namespace; one
veth connects the root namespace to the same bridge, so the test process reaches every host by IP.
Every name carries the `Network`'s short id, so parallel runs never clash, and what a run killed
before its teardown left behind is removed by the next one (`sweep`).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.cgroups import (
    CGROUP_PREFIX,
    CpuCgroups,
    cpu_cgroups,
    read_pids,
)
from edgeswarm.dev.netns.kernel import KILL_TIMEOUT, FleetError, kill_all, send_signal, write
from edgeswarm.dev.netns.namespaces import (
    HOST_INTERFACE,
    HOST_NAME,
    MULTICAST,
    Process,
    free_subnet,
    host_ns,
    namespace_pids,
    purge,
    reserve_id,
    root_link,
    run,
    run_dir_lock,
    sweep,
    switch_ns,
)

logger = logging.getLogger(__name__)


class Host:
    """One machine of the fleet: a namespace whose `eth0` has `ip` on the bridge, and its processes."""

    def __init__(self, network: Network, name: str, index: int) -> None:
        self.name = name
        self.ns = host_ns(network.id, name)
        self.ip = str(network.subnet[index])
        self.port = f"es{network.id}p{index}"
        self.cgroup: Path | None = None
        self._network = network
        self._cgroups: CpuCgroups | None = None
        self._processes: list[Process] = []
        self._limited = 0  # htb classes made by slow_between

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ns={self.ns!r}, ip={self.ip!r})"

    def wire(self) -> None:
        """Creates the namespace and its cable: `eth0` here, `port` on the bridge, multicast routed out."""
        net = self._network
        run("ip", "netns", "add", self.ns)
        run("ip", "-n", self.ns, "link", "set", "lo", "up")
        peer = ("peer", "name", self.port, "netns", net.switch)
        run("ip", "link", "add", HOST_INTERFACE, "netns", self.ns, "type", "veth", *peer)
        run("ip", "-n", self.ns, "addr", "add", f"{self.ip}/{net.subnet.prefixlen}", "dev", HOST_INTERFACE)
        run("ip", "-n", self.ns, "link", "set", HOST_INTERFACE, "multicast", "on", "up")
        run("ip", "-n", self.ns, "route", "add", MULTICAST, "dev", HOST_INTERFACE)
        run("ip", "-n", net.switch, "link", "set", self.port, "master", net.bridge, "up")

    @property
    def processes(self) -> list[Process]:
        """Every process started with `popen`, running or not."""
        return list(self._processes)

    def popen(self, argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> Process:
        """Starts `argv` in this host with stdout and stderr appended to `log`.

        `env` adds to (or overrides) the inherited environment. Once the host has a cgroup the process
        joins it before exec, so a throttle applies to processes started later too.
        """
        command = ["ip", "netns", "exec", self.ns, *argv]
        if self.cgroup is not None:
            join = 'echo $$ > "$1" && shift && exec "$@"'
            command = ["/bin/sh", "-c", join, "sh", str(self.cgroup / "cgroup.procs"), *command]
        logger.debug("popen: %s", shlex.join(command))
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env} if env is not None else None,
                start_new_session=True,
            )
        self._processes.append(proc)
        return proc

    def pids(self) -> set[int]:
        """Every live process of the host: those started here and whatever runs in its namespace."""
        return {p.pid for p in self._processes if p.poll() is None} | namespace_pids(self.ns)

    def kill(self, proc: Process | None = None) -> None:
        """SIGKILL `proc`, or every process of the host (a crash), and reap what this process started."""
        if proc is not None:
            if proc.poll() is None:
                kill_all({proc.pid})
            proc.wait(timeout=KILL_TIMEOUT)
            return
        kill_all(self.pids())
        for p in self._processes:
            p.wait(timeout=KILL_TIMEOUT)
        wait_until(lambda: not namespace_pids(self.ns), KILL_TIMEOUT, f"processes of {self.name} to die")

    def terminate(self) -> None:
        """SIGTERM to every process of the host; does not wait."""
        send_signal(self.pids(), signal.SIGTERM)

    def freeze(self) -> None:
        """SIGSTOP to every process of the host: it hangs, while its kernel still accepts connections."""
        send_signal(self.pids(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT to every process of the host."""
        send_signal(self.pids(), signal.SIGCONT)

    def link_down(self) -> None:
        """Cuts the cable: the switch side of the host's veth goes down."""
        run("ip", "-n", self._network.switch, "link", "set", self.port, "down")

    def link_up(self) -> None:
        """Plugs the cable back in."""
        run("ip", "-n", self._network.switch, "link", "set", self.port, "up")

    def _cable_ends(self) -> list[tuple[str, str]]:
        return [(self.ns, HOST_INTERFACE), (self._network.switch, self.port)]

    def slow(self, rate_kbit: int, latency_ms: int = 50, burst_bytes: int = 32_768) -> None:
        """A token bucket on the egress of both ends of the cable, so traffic both ways is slowed."""
        tbf = ("tbf", "rate", f"{rate_kbit}kbit", "burst", f"{burst_bytes}", "latency", f"{latency_ms}ms")
        for ns, dev in self._cable_ends():
            run("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", *tbf)

    def unslow(self) -> None:
        """Removes the token buckets that `slow` put on the cable."""
        for ns, dev in self._cable_ends():
            if " tbf " in run("tc", "-n", ns, "qdisc", "show", "dev", dev):
                run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root")

    def slow_between(self, other: Host, rate_kbit: int) -> None:
        """Caps only the traffic between this host and `other`, both ways, at `rate_kbit`: on each one's
        `eth0`, an htb class for packets to the other's address (a u32 filter), the rest unlimited."""
        for source, target in ((self, other), (other, self)):
            source._limit_to(target.ip, rate_kbit)

    def _limit_to(self, ip: str, rate_kbit: int) -> None:
        tc = ("tc", "-n", self.ns)
        dev = ("dev", HOST_INTERFACE)
        if " htb " not in run(*tc, "qdisc", "show", *dev):
            run(*tc, "qdisc", "add", *dev, "root", "handle", "1:", "htb", "default", "1")
            run(*tc, "class", "add", *dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit")
        self._limited += 1
        classid = f"1:{1 + self._limited}"
        rate = f"{rate_kbit}kbit"
        run(*tc, "class", "add", *dev, "parent", "1:", "classid", classid, "htb", "rate", rate, "ceil", rate)
        match = ("u32", "match", "ip", "dst", f"{ip}/32", "flowid", classid)
        run(*tc, "filter", "add", *dev, "parent", "1:", "protocol", "ip", "prio", "1", *match)

    def throttle_cpu(self, share: float) -> None:
        """Caps the host's processes, present and future, at `share` of one CPU (0.1: 10 ms per 100 ms)."""
        if share <= 0:
            raise ValueError(f"share must be positive, not {share}")
        if self._cgroups is None or self.cgroup is None:
            self._cgroups = cpu_cgroups()
            self.cgroup = self._cgroups.create(f"{CGROUP_PREFIX}{self._network.id}-{self.name}")
        self._cgroups.limit(self.cgroup, share)
        self._join_cgroup(self.cgroup)

    def unthrottle(self) -> None:
        """Lifts the CPU cap; the processes stay in the host's cgroup."""
        if self._cgroups is not None and self.cgroup is not None:
            self._cgroups.limit(self.cgroup, None)

    def _join_cgroup(self, group: Path) -> None:
        """Moves every process of the host into `group`, again until none forked in between is left out."""
        for _ in range(5):
            missing = self.pids() - read_pids(group / "cgroup.procs")
            if not missing:
                return
            for pid in missing:
                with contextlib.suppress(ProcessLookupError):
                    write(group / "cgroup.procs", pid)
        raise FleetError(f"processes of {self.name} keep escaping cgroup {group}")


class Network:
    """A bridge in a switch namespace, plus hosts on it; the root namespace is `.1` of a free /24.

    Use it as a context manager: leaving it, an atexit hook, or failing setup tears everything down.
    """

    def __init__(self) -> None:
        self.id = ""
        self.subnet = ipaddress.IPv4Network("0.0.0.0/32")
        self.hosts: dict[str, Host] = {}
        self._owner: Path | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Network({self.id!r}, subnet={self.subnet}, hosts={list(self.hosts)})"

    @property
    def switch(self) -> str:
        """The namespace holding the bridge."""
        return switch_ns(self.id)

    @property
    def bridge(self) -> str:
        return f"es{self.id}br"

    @property
    def root_link(self) -> str:
        """The root namespace's interface on the bridge."""
        return root_link(self.id)

    @property
    def root_ip(self) -> str:
        """The root namespace's address on the bridge: where the test process is seen from."""
        return str(self.subnet[1])

    def __enter__(self) -> Network:
        try:
            sweep()
        except Exception:
            logger.exception("could not sweep networks left by dead processes")
        self.id, self._owner = reserve_id()
        atexit.register(self.close)
        try:
            self._build_switch()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except FleetError:
            if exc is None:
                raise
            logger.exception("teardown of network %s failed after an earlier error", self.id)

    def _build_switch(self) -> None:
        run("ip", "netns", "add", self.switch)
        run("ip", "-n", self.switch, "link", "add", self.bridge, "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", self.switch, "link", "set", self.bridge, "up")
        with run_dir_lock("subnet.lock"):
            self.subnet = free_subnet()
            self._connect_root()

    def _connect_root(self) -> None:
        """One veth from the root namespace to the bridge, kept out of anything but reaching the hosts.

        No IPv6, no forwarding of what arrives on it, no multicast flag, and the bridge floods no
        multicast to it: the fleet's mDNS neither leaks into the root namespace nor gets routed on.
        """
        link, uplink = self.root_link, f"es{self.id}u"
        run("ip", "link", "add", link, "type", "veth", "peer", "name", uplink, "netns", self.switch)
        for sysctl, value in ((f"ipv6/conf/{link}/disable_ipv6", 1), (f"ipv4/conf/{link}/forwarding", 0)):
            if Path("/proc/sys/net", sysctl).exists():
                write(Path("/proc/sys/net", sysctl), value)
        run("ip", "link", "set", link, "multicast", "off")
        run("ip", "addr", "add", f"{self.root_ip}/{self.subnet.prefixlen}", "dev", link)
        run("ip", "link", "set", link, "up")
        run("ip", "-n", self.switch, "link", "set", uplink, "master", self.bridge, "up")
        run("ip", "-n", self.switch, "link", "set", uplink, "type", "bridge_slave", "mcast_flood", "off")

    def add_host(self, name: str) -> Host:
        """A new host on the bridge at the next free address of the subnet."""
        if self._closed or not self.id:
            raise FleetError("add_host needs an entered, open Network")
        if not HOST_NAME.fullmatch(name) or name in self.hosts:
            raise ValueError(f"host name {name!r} is taken or not [A-Za-z0-9_-]{{1,32}}")
        index = len(self.hosts) + 2
        if index >= self.subnet.num_addresses - 1:
            raise FleetError(f"subnet {self.subnet} is full")
        host = Host(self, name, index)
        self.hosts[name] = host
        host.wire()
        return host

    def close(self) -> None:
        """Kills every host's processes and removes namespaces, veths and cgroups; safe to repeat."""
        if self._closed or not self.id:
            return
        errors: list[Exception] = []
        for host in self.hosts.values():
            try:
                host.kill()
            except Exception as e:
                errors.append(e)
        try:
            purge(self.id)
        except Exception as e:
            errors.append(e)
        if errors:
            raise FleetError(f"teardown of network {self.id}: " + "; ".join(map(str, errors)))
        self._closed = True
        if self._owner is not None:
            self._owner.unlink(missing_ok=True)
        atexit.unregister(self.close)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print("swept:", " ".join(sweep()) or "nothing")
