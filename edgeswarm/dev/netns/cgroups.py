"""CPU caps for the harness's hosts: a cgroup per host in cgroup v1's cpu controller (CFS quota) or
cgroup v2 (cpu.max), whichever this kernel offers."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.kernel import KILL_TIMEOUT, FleetError, kill_all, write

logger = logging.getLogger(__name__)

CGROUP_PREFIX = "edgeswarm-"
CPU_PERIOD_US = 100_000


def read_pids(path: Path) -> set[int]:
    """The pids listed in a cgroup's `cgroup.procs`; empty when the cgroup is gone."""
    try:
        return {int(pid) for pid in path.read_text().split()}
    except FileNotFoundError:
        return set()


def cgroup_mounts() -> list[tuple[int, Path]]:
    """(version, mount point) of every cgroup v1 hierarchy holding the cpu controller, then of cgroup2."""
    v1: list[tuple[int, Path]] = []
    v2: list[tuple[int, Path]] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount, _, fs = line.partition(" - ")
        fstype, _source, options = [*fs.split(), "", "", ""][:3]
        point = Path(mount.split()[4])
        if fstype == "cgroup" and "cpu" in options.split(","):
            v1.append((1, point))
        elif fstype == "cgroup2":
            v2.append((2, point))
    return v1 + v2


@dataclass(frozen=True)
class CpuCgroups:
    """A cgroup hierarchy that can cap CPU: cgroup v1's cpu controller (CFS quota) or cgroup v2 (cpu.max)."""

    version: int
    root: Path

    def create(self, name: str) -> Path:
        """A child cgroup of the hierarchy's root, with no limit yet."""
        if self.version == 2:
            self._enable_cpu()
        group = self.root / name
        logger.debug("mkdir %s", group)
        group.mkdir(exist_ok=True)
        return group

    def limit(self, group: Path, share: float | None) -> None:
        """Caps `group` at `share` CPUs (quota = share x period), or lifts the cap when `share` is None."""
        quota = None if share is None else max(1000, round(share * CPU_PERIOD_US))
        if self.version == 1:
            write(group / "cpu.cfs_period_us", CPU_PERIOD_US)
            write(group / "cpu.cfs_quota_us", -1 if quota is None else quota)
        else:
            write(group / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")

    def _enable_cpu(self) -> None:
        control = self.root / "cgroup.subtree_control"
        if "cpu" not in control.read_text().split():
            write(control, "+cpu")


def unusable(version: int, mount: Path) -> str | None:
    """Why the hierarchy at `mount` cannot cap CPU, or None."""
    if not os.access(mount, os.W_OK):
        return f"cgroup v{version} at {mount} is not writable"
    if version == 1 and not (mount / "cpu.cfs_quota_us").exists():
        return f"cgroup v1 at {mount} has no cpu.cfs_quota_us (kernel without CFS bandwidth control)"
    if version == 2 and "cpu" not in (mount / "cgroup.controllers").read_text().split():
        return f"cgroup v2 at {mount} does not offer the cpu controller"
    return None


def cpu_cgroups() -> CpuCgroups:
    """The hierarchy to throttle CPU with: v1's cpu controller, else v2; FleetError saying why neither."""
    reasons = []
    for version, mount in cgroup_mounts():
        reason = unusable(version, mount)
        if reason is None:
            return CpuCgroups(version, mount)
        reasons.append(reason)
    raise FleetError("no usable cgroup cpu controller: " + ("; ".join(reasons) or "no cgroup mount found"))


def cgroups_of(net_id: str) -> list[Path]:
    """The cgroups that network `net_id` created, in any cgroup hierarchy."""
    return [group for _, mount in cgroup_mounts() for group in mount.glob(f"{CGROUP_PREFIX}{net_id}-*")]


def remove_cgroup(group: Path) -> None:
    """Kills what is left in `group`, then removes it once the kernel sees it empty."""

    def removed() -> bool:
        kill_all(read_pids(group / "cgroup.procs"))
        try:
            group.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise FleetError(f"cannot remove cgroup {group}: {e}") from e
            return False
        return True

    logger.debug("rmdir %s", group)
    wait_until(removed, KILL_TIMEOUT, f"cgroup {group} to empty")
