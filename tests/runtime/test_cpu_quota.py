"""Under a real CFS quota the server sizes OpenVINO's CPU threads for the quota, not the cores.

The server is started inside a cgroup this test makes (cgroup v1's cpu controller, or v2 where
it offers ``cpu``) and removed afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import cgroups
from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime


@contextmanager
def cpu_quota(cpus: float) -> Iterator[Path]:
    try:
        with cgroups.cpu_quota(cpus) as cgroup:
            yield cgroup
    except cgroups.NoCpuControllerError as missing:
        pytest.skip(str(missing))


def _diagnostics(server: RunningServer) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
    return answer


def _throughput_server_args(model_dir: Path, plugin_config: dict[str, str]) -> list[str]:
    return [
        "--model_path",
        str(model_dir),
        "--model_name",
        "classifier",
        "--target_device",
        "CPU",
        "--plugin_config",
        json.dumps({"PERFORMANCE_HINT": "THROUGHPUT", **plugin_config}),
    ]


@pytest.fixture
def two_cpus() -> int:
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        pytest.skip("a quota below the cpuset needs at least two CPUs to show")
    return cpus


def test_half_a_cpu_of_quota_compiles_for_one_thread_and_one_stream(
    tmp_path: Path, model_dir: Path, two_cpus: int
) -> None:
    args = _throughput_server_args(model_dir, {})
    with running_server(args, tmp_path) as free:
        free.wait_ready()
        (unlimited,) = _diagnostics(free)["models"]
        assert _diagnostics(free)["cpu"]["threadCap"] is None
    assert unlimited["streams"] > 1  # THROUGHPUT fills the cpuset's cores without a quota

    with cpu_quota(0.5) as cgroup, running_server(args, tmp_path, cgroup=cgroup) as capped:
        capped.wait_ready()
        diagnostics = _diagnostics(capped)
        assert diagnostics["cpu"]["quotaCpus"] == 0.5
        assert diagnostics["cpu"]["affinity"] == two_cpus
        assert diagnostics["cpu"]["threadCap"] == 1
        (model,) = diagnostics["models"]
        assert model["streams"] == 1
        assert model["optimalInferRequests"] == 1
        assert "OpenVINO's CPU threads capped at 1" in capped.log()


def test_streams_the_model_asks_for_are_kept_under_a_quota(
    tmp_path: Path, model_dir: Path, two_cpus: int
) -> None:
    args = _throughput_server_args(model_dir, {"NUM_STREAMS": "2"})
    with cpu_quota(0.5) as cgroup, running_server(args, tmp_path, cgroup=cgroup) as server:
        server.wait_ready()
        (model,) = _diagnostics(server)["models"]
        assert model["streams"] == 2
