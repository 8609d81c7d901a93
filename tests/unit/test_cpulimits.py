"""The CPUs a process may really use: cgroup v1 and v2 quotas, nested cgroups, container views."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevino_runtime.cpulimits import (
    CgroupQuota,
    CpuAllowance,
    read_cgroup_quota,
    user_chose_cpu_threads,
)

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
"""
V2_MOUNTS = "41 23 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def _machine(tmp_path: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    for name, text in files.items():
        path = tmp_path / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_v1_quota_is_quota_over_period(tmp_path: Path) -> None:
    base = "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr"
    root = _machine(
        tmp_path,
        "4:cpuset:/kubepods/pod1/ctr\n3:cpu,cpuacct:/kubepods/pod1/ctr\n0::/\n",
        V1_MOUNTS,
        {f"{base}/cpu.cfs_quota_us": "150000\n", f"{base}/cpu.cfs_period_us": "100000\n"},
    )
    quota = read_cgroup_quota(root)
    assert quota is not None
    assert quota.cpus == 1.5
    assert "cpu.cfs_quota_us 150000 per 100000" in quota.source


def test_a_v2_quota_is_read_from_cpu_max_and_max_means_none(tmp_path: Path) -> None:
    limited = _machine(
        tmp_path / "a",
        "0::/kubepods/pod1\n",
        V2_MOUNTS,
        {"/sys/fs/cgroup/kubepods/pod1/cpu.max": "50000 100000\n"},
    )
    quota = read_cgroup_quota(limited)
    assert quota is not None and quota.cpus == 0.5
    unlimited = _machine(
        tmp_path / "b",
        "0::/kubepods/pod1\n",
        V2_MOUNTS,
        {"/sys/fs/cgroup/kubepods/pod1/cpu.max": "max 100000\n"},
    )
    assert read_cgroup_quota(unlimited) is None


def test_a_parents_smaller_quota_binds_the_child(tmp_path: Path) -> None:
    root = _machine(
        tmp_path,
        "0::/kubepods/pod1/ctr\n",
        V2_MOUNTS,
        {
            "/sys/fs/cgroup/kubepods/pod1/cpu.max": "200000 100000\n",
            "/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000\n",
            "/sys/fs/cgroup/kubepods/cpu.max": "max 100000\n",
        },
    )
    quota = read_cgroup_quota(root)
    assert quota is not None and quota.cpus == 2.0


def test_inside_a_cgroup_namespace_the_containers_cgroup_is_the_mounts_root(
    tmp_path: Path,
) -> None:
    root = _machine(tmp_path, "0::/\n", V2_MOUNTS, {"/sys/fs/cgroup/cpu.max": "400000 100000\n"})
    quota = read_cgroup_quota(root)
    assert quota is not None and quota.cpus == 4.0


def test_nothing_readable_means_no_quota(tmp_path: Path) -> None:
    assert read_cgroup_quota(tmp_path) is None
    root = _machine(tmp_path / "m", "3:cpu,cpuacct:/x\n", V1_MOUNTS, {})
    assert read_cgroup_quota(root) is None


@pytest.mark.parametrize(
    ("affinity", "quota", "cpus", "limited"),
    [
        (64, 4.0, 4, True),
        (2, 0.5, 1, True),  # at least one thread
        (8, 2.5, 2, True),  # rounded down: the threads never outrun the quota
        (2, 4.0, 2, False),  # the cpuset is the smaller bound: OpenVINO already sees it
        (16, None, 16, False),
    ],
)
def test_threads_are_sized_for_the_smaller_of_cpuset_and_quota(
    affinity: int, quota: float | None, cpus: int, limited: bool
) -> None:
    allowance = CpuAllowance(
        online=64, affinity=affinity, quota=None if quota is None else CgroupQuota(quota, "x")
    )
    assert allowance.cpus == cpus
    assert allowance.limited is limited
    assert allowance.as_dict()["threadCap"] == (cpus if limited else None)
    assert (f"capped at {cpus}" in allowance.describe()) is limited


@pytest.mark.parametrize(
    ("properties", "chosen"),
    [
        ({"PERFORMANCE_HINT": "THROUGHPUT"}, False),
        ({"NUM_STREAMS": "4"}, True),
        ({"inference_num_threads": 2}, True),
        ({"DEVICE_PROPERTIES": {"CPU": {"NUM_STREAMS": 2}}}, True),
        ({"DEVICE_PROPERTIES": {"GPU": {"NUM_STREAMS": 2}}}, False),
    ],
)
def test_a_model_that_sizes_its_own_cpu_threads_or_streams_keeps_them(
    properties: dict[str, object], chosen: bool
) -> None:
    assert user_chose_cpu_threads(properties) is chosen
