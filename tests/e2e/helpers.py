"""What the node-tier tests share: helm, port-forwards, model directories on the node."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubevino_devcluster.controlplane import REPO, ControlPlane
from kubevino_devcluster.ports import free_ports
from kubevino_runtime.demo_model import write_model


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [plane.binary("helm"), "--kubeconfig", str(plane.admin_kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def chart_values(**values: Any) -> list[str]:
    """helm flags for operator settings (keys of the chart's ``settings``) and chart values
    (keys starting with ``nodeAgent.``): lists and mappings as JSON, booleans as true/false."""
    flags: list[str] = []
    for key, value in values.items():
        path = key if key.startswith("nodeAgent.") else f"settings.{key}"
        if isinstance(value, list | dict):
            flags += ["--set-json", f"{path}={json.dumps(value)}"]
        else:
            flags += ["--set", f"{path}={json.dumps(value) if isinstance(value, bool) else value}"]
    return flags


def upgrade_settings(plane: ControlPlane, **values: Any) -> None:
    """``helm upgrade`` to exactly these settings and values (the rest reset); the operator
    restarts with them."""
    helm(
        plane,
        "upgrade", "kubevino", "charts/kubevino", "--namespace", "kubevino-system",
        "--reset-values", *chart_values(**values), "--wait", "--timeout", "300s",
    )  # fmt: skip


def apply_model(plane: ControlPlane, name: str, namespace: str, spec: dict[str, Any]) -> None:
    """kubectl apply an InferenceModel serving the bundled model under the name classifier."""
    manifest = {
        "apiVersion": "kubevino.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def host_path_claim(plane: ControlPlane, namespace: str, name: str, path: Path, mode: str) -> str:
    """A hostPath-backed PersistentVolume bound to a user's claim ``name`` in ``namespace``;
    the volume's name (cluster-scoped: the caller deletes it)."""
    volume_name = f"{namespace}-{name}"
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": [mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(path), "type": "Directory"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": [mode],
            "storageClassName": "",
            "volumeName": volume_name,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    for obj in (volume, claim):
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
    return volume_name


def node_model_directory(root: Path, name: str = "classifier") -> Path:
    """The bundled model in Model Server's layout, readable by the pods' non-root user."""
    base = root / name
    write_model(base)
    for path in [root, *base.rglob("*"), base]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return base


@contextmanager
def port_forward(
    plane: ControlPlane, namespace: str, target: str, *ports: int
) -> Iterator[list[int]]:
    local = free_ports(len(ports))
    mapping = [f"{mine}:{theirs}" for mine, theirs in zip(local, ports, strict=True)]
    process = subprocess.Popen(
        [plane.binary("kubectl"), "--kubeconfig", str(plane.admin_kubeconfig), "-n",
         namespace, "port-forward", "--address", "127.0.0.1", target, *mapping],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = ""
        deadline = time.monotonic() + 30
        while seen.count("Forwarding from") < len(ports):
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise AssertionError(f"port-forward to {target} failed: {seen}{line}")
            seen += line
        yield local
    finally:
        process.terminate()
        process.wait(10)


def run_clients(rest: str, grpc_address: str, model: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.client", rest, grpc_address, model],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise AssertionError(f"clients failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
