"""How many CPUs this process may really use, and OpenVINO's CPU threads capped to it.

OpenVINO sizes its CPU streams and threads from the cores it can see, not from the container's
CPU quota: a pod limited to 4 CPUs on a 64-core node would compile for 64 threads and spend its
time throttled by CFS. The quota lives in the cgroup (v1 ``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``, v2 ``cpu.max``), the cpuset in the process's affinity mask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Plugin properties by which a user already chose the CPU's threads or streams: then theirs win.
THREAD_PROPERTIES = ("INFERENCE_NUM_THREADS", "CPU_THREADS_NUM")
STREAM_PROPERTIES = ("NUM_STREAMS", "CPU_THROUGHPUT_STREAMS")


@dataclass(frozen=True)
class CgroupQuota:
    cpus: float  # the CPUs one period's quota pays for
    source: str  # the file and its words, for the log and the diagnostics


@dataclass(frozen=True)
class CpuAllowance:
    online: int  # CPUs the machine has
    affinity: int  # CPUs the process may be scheduled on (the cpuset)
    quota: CgroupQuota | None  # None: no CFS quota anywhere up the process's cgroups

    @property
    def cpus(self) -> int:
        """Whole CPUs to size threads for: the cpuset, or less under a quota (rounded down, so
        that the threads never outrun the quota and get throttled; at least one)."""
        if self.quota is None:
            return self.affinity
        return max(1, min(self.affinity, math.floor(self.quota.cpus)))

    @property
    def limited(self) -> bool:
        """Whether OpenVINO, which sees the cpuset, would size for more than the quota pays."""
        return self.cpus < self.affinity

    def as_dict(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "affinity": self.affinity,
            "quotaCpus": None if self.quota is None else round(self.quota.cpus, 3),
            "quotaSource": None if self.quota is None else self.quota.source,
            "threadCap": self.cpus if self.limited else None,
        }

    def describe(self) -> str:
        seen = f"{self.online} CPUs online, {self.affinity} in this process's cpuset"
        if self.quota is None:
            return f"{seen}, no CPU quota: OpenVINO sizes its CPU threads for {self.affinity}"
        quota = f"a quota of {self.quota.cpus:g} CPUs ({self.quota.source})"
        if not self.limited:
            return f"{seen}, {quota}: OpenVINO sizes its CPU threads for {self.affinity}"
        return f"{seen}, {quota}: OpenVINO's CPU threads capped at {self.cpus}"


def read_cpu_allowance(root: Path = Path("/")) -> CpuAllowance:
    """The allowance of this process; ``root`` stands for ``/`` in tests."""
    affinity = len(os.sched_getaffinity(0))
    return CpuAllowance(
        online=os.cpu_count() or affinity, affinity=affinity, quota=read_cgroup_quota(root)
    )


def read_cgroup_quota(root: Path = Path("/")) -> CgroupQuota | None:
    """The smallest CFS quota on the way from the process's cgroup up to its hierarchy's root
    (a parent's quota binds its children too); None where there is none or nothing to read."""
    try:
        membership = (root / "proc/self/cgroup").read_text()
        mounts = (root / "proc/self/mountinfo").read_text()
    except OSError:
        return None
    found: list[CgroupQuota] = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            mount = cgroup_mount(mounts, "cgroup2", None)
            if mount is not None:
                found += _walk(root, mount, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            mount = cgroup_mount(mounts, "cgroup", "cpu")
            if mount is not None:
                found += _walk(root, mount, path, _v1_quota)
    return min(found, key=lambda quota: quota.cpus, default=None)


def cgroup_mount(mountinfo: str, fstype: str, controller: str | None) -> tuple[str, str] | None:
    """(mount point, the cgroup path mounted there) of the first matching cgroup mount."""
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts = fields.split()
        described = tail.split()
        if len(parts) < 5 or len(described) < 3 or described[0] != fstype:
            continue
        if controller is not None and controller not in described[2].split(","):
            continue
        return parts[4], parts[3]
    return None


def _walk(
    root: Path, mount: tuple[str, str], path: str, read: Callable[[Path], CgroupQuota | None]
) -> list[CgroupQuota]:
    """Every quota from the process's cgroup up to the mount's root. Inside a container's
    cgroup namespace the path is ``/`` and the mount's root is the container's own cgroup."""
    point, mounted = mount
    relative = path if mounted == "/" else path.removeprefix(mounted)
    directory = root / point.lstrip("/") / relative.strip("/")
    top = root / point.lstrip("/")
    quotas = []
    while True:
        quota = read(directory)
        if quota is not None:
            quotas.append(quota)
        if directory == top or top not in directory.parents:
            return quotas
        directory = directory.parent


def _v1_quota(directory: Path) -> CgroupQuota | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return CgroupQuota(quota / period, f"{directory}/cpu.cfs_quota_us {quota} per {period}")


def _v2_quota(directory: Path) -> CgroupQuota | None:
    try:
        words = (directory / "cpu.max").read_text().split()
    except OSError:
        return None
    if len(words) != 2 or words[0] == "max":
        return None
    try:
        quota, period = int(words[0]), int(words[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return CgroupQuota(quota / period, f"{directory}/cpu.max {quota} {period}")


def user_chose_cpu_threads(properties: Mapping[str, Any]) -> bool:
    """Whether a model's own plugin config sizes the CPU: then the cap stays off it."""
    chosen = {key.upper() for key in properties}
    device_scoped = properties.get("DEVICE_PROPERTIES")
    if isinstance(device_scoped, Mapping):
        cpu = device_scoped.get("CPU")
        if isinstance(cpu, Mapping):
            chosen |= {key.upper() for key in cpu}
    return bool(chosen & set(THREAD_PROPERTIES + STREAM_PROPERTIES))
