"""``kubevino dev-cluster`` as a user runs it: ``up`` returns to the shell with the cluster
running, kubectl from the host's network namespace works through the host-side kubeconfig
(port-forward included), ``status`` says what runs, and ``down`` leaves no process, network
namespace, mount or directory behind.

A package of its own: the node tier's package-scoped cluster (tests/e2e) must not run beside
this one (both nodes would share the machine's kubepods cgroups and /var/lib/kubelet)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from kubevino_devcluster.kubetools import KubeTools
from kubevino_devcluster.state import read_state

pytestmark = pytest.mark.e2e

RUNTIME_IMAGE = "ghcr.io/kubevino/runtime:0.1.0"


def dev_cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubevino_operator.cli", "dev-cluster", *args],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip


def file_server_pod() -> str:
    """A pod of the runtime image (imported by ``up``) serving its working directory."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "files"},
        "spec": {"containers": [{
            "name": "files", "image": RUNTIME_IMAGE, "imagePullPolicy": "Never",
            "command": ["python3", "-m", "http.server", "8080", "--directory", "/opt/kubevino"],
        }]},
    })  # fmt: skip


def test_up_gives_the_host_shell_a_cluster_and_down_leaves_nothing() -> None:
    if os.geteuid() != 0:
        pytest.skip("kubevino dev-cluster runs a kubelet, containerd and a network namespace: root")
    # Short: containerd's unix sockets live below it.
    directory = Path(f"/tmp/kv-dc-{uuid.uuid4().hex[:8]}")
    up = dev_cluster("up", "--dir", str(directory), "--images", "runtime")
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(directory)
    assert state is not None and state.phase == "ready"
    assert f"export KUBECONFIG={directory}/kubeconfig" in up.stdout
    namespace = state.namespace
    try:
        # This process never entered the cluster's namespace: the host-side kubeconfig works.
        tools = KubeTools(
            Path(state.kubeconfig),
            str(directory / "bin" / "kubectl"),
            str(directory / "bin" / "helm"),
        )
        nodes = json.loads(tools.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        assert [node["metadata"]["name"] for node in nodes] == ["kv-node"]
        ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
        assert ready == "True"
        tools.kubectl("apply", "-f", "-", stdin=file_server_pod())
        tools.kubectl("wait", "--for=condition=Ready", "pod/files", "--timeout=120s", timeout=150)
        with tools.port_forward("default", "pod/files", 8080) as (local,):
            listing = httpx.get(f"http://127.0.0.1:{local}/", timeout=30)
        assert listing.status_code == 200
        assert "bin/" in listing.text

        status = dev_cluster("status", "--dir", str(directory))
        assert status.returncode == 0, status.stderr
        assert "ready" in status.stdout and "kv-node" in status.stdout
        again = dev_cluster("up", "--dir", str(directory))
        assert again.returncode == 1 and "already runs" in again.stderr
    finally:
        down = dev_cluster("down", "--dir", str(directory))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not directory.exists()
    assert not Path(f"/run/netns/{namespace}").exists()
    host, port = state.server.removeprefix("https://").split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()
    left = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    assert left.stdout == ""
    assert str(directory) not in Path("/proc/self/mountinfo").read_text()
    assert dev_cluster("status", "--dir", str(directory)).returncode == 3


def test_bad_node_options_are_refused_with_the_reason_before_anything_starts(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "never"
    # Refused before the root check: a user without root learns what is wrong first.
    for args, reason in (
        (["--node", "name=Gpu"], "not a DNS-1123 label"),
        (["--node", "name=a,render-gid=render"], "is not a group id"),
        (["--node", "name=a,gpu"], "'gpu' is not one of"),
        (["--node", "render-gid=110"], "name= is required"),
        (["--node", "name=a", "--node", "name=a"], "given more than once"),
        (["--nodes", "2", "--node", "name=a"], "not both"),
        (["--nodes", "0"], "at least one node"),
        (["--images", "gpu"], "not one of operator, runtime, runtime-gpu"),
        (["--dir", str(tmp_path / ("long" * 20))], "too long for the nodes' unix sockets"),
    ):
        done = dev_cluster("up", "--dir", str(directory), *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert reason in done.stderr, (args, done.stderr)
    assert not directory.exists()
