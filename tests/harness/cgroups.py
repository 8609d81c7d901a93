"""A throwaway cgroup with a CPU quota, for tests and benches that start a server inside it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubevino_runtime.cpulimits import cgroup_mount

PERIOD_US = 100_000


class NoCpuControllerError(RuntimeError):
    """This machine (or this user) cannot make a cgroup with a CPU quota."""


def controller_hierarchy(controller: str) -> tuple[Path, str] | None:
    """Where a cgroup with ``controller`` (cpu, memory) can be made here: (directory, cgroup
    version), the v1 hierarchy of that controller first."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    v1 = cgroup_mount(mountinfo, "cgroup", controller)
    if v1 is not None:
        return Path(v1[0]), "v1"
    v2 = cgroup_mount(mountinfo, "cgroup2", None)
    if v2 is not None and controller in (Path(v2[0]) / "cgroup.controllers").read_text().split():
        return Path(v2[0]), "v2"
    return None


def cpu_hierarchy() -> tuple[Path, str] | None:
    """Where a cgroup with a CPU quota can be made here."""
    return controller_hierarchy("cpu")


@contextmanager
def cpu_quota(cpus: float) -> Iterator[Path]:
    """A new cgroup whose processes share ``cpus`` CPUs of CFS quota; removed afterwards (its
    processes must have exited by then)."""
    missing = NoCpuControllerError("needs root and a cgroup hierarchy with the cpu controller")
    with _new_cgroup("cpu", "kubevino-test", missing) as (cgroup, version):
        quota = int(cpus * PERIOD_US)
        if version == "v1":
            (cgroup / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cgroup / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (cgroup / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        yield cgroup


@contextmanager
def _new_cgroup(controller: str, prefix: str, missing: RuntimeError) -> Iterator[tuple[Path, str]]:
    """A new cgroup of ``controller``'s hierarchy and its cgroup version; removed afterwards
    (its processes must have exited by then). ``missing`` is raised where none can be made."""
    found = controller_hierarchy(controller)
    if os.geteuid() != 0 or found is None:
        raise missing
    hierarchy, version = found
    cgroup = hierarchy / f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"
    cgroup.mkdir()
    try:
        yield cgroup, version
    finally:
        _remove(cgroup)


def _remove(cgroup: Path) -> None:
    # The server's process has exited; the kernel lets go of the cgroup a moment later.
    deadline = time.monotonic() + 10
    while True:
        try:
            cgroup.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class NoMemoryControllerError(RuntimeError):
    """This machine (or this user) cannot make a memory cgroup."""


def memory_hierarchy() -> tuple[Path, str] | None:
    """Where a memory cgroup can be made here."""
    return controller_hierarchy("memory")


@contextmanager
def memory_cgroup() -> Iterator[Path]:
    """A new memory cgroup without a limit, so a server started in it is charged as a pod's
    container is; removed afterwards (its processes must have exited by then)."""
    missing = NoMemoryControllerError("needs root and a cgroup hierarchy with memory")
    with _new_cgroup("memory", "kubevino-memory", missing) as (cgroup, _):
        yield cgroup


def memory_charged(cgroup: Path) -> dict[str, int]:
    """What the kernel charges the cgroup, in bytes: ``total`` (what a memory limit and the
    OOM killer compare: v1 memory.usage_in_bytes, v2 memory.current), ``anon`` (processes'
    private and copy-on-write pages) and ``file`` (page cache the cgroup faulted in first:
    files read, libraries mapped, shared memory such as memfd slots)."""
    stat = {
        key: int(value)
        for key, value in (
            line.split() for line in (cgroup / "memory.stat").read_text().splitlines()
        )
    }
    if (cgroup / "memory.usage_in_bytes").exists():  # v1
        total = int((cgroup / "memory.usage_in_bytes").read_text())
        return {"total": total, "anon": stat["total_rss"], "file": stat["total_cache"]}
    total = int((cgroup / "memory.current").read_text())
    return {"total": total, "anon": stat["anon"], "file": stat["file"]}
