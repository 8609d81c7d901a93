"""Cluster tier: a real etcd + kube-apiserver + controller-manager + scheduler on loopback,
the CRD installed, and the operator running under exactly the ClusterRole the chart ships."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubevino_devcluster.controlplane import ControlPlane, control_plane, write_kubeconfig
from kubevino_operator.rbac import NAME, service_account_objects
from tests.harness.audit import OPERATOR_NAMESPACE
from tests.harness.operator import OperatorProcess

T = TypeVar("T")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cluster")) as plane:
        plane.install_crds()
        plane.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        plane.kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(service_account_objects(OPERATOR_NAMESPACE)),
        )
        yield plane


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: ControlPlane) -> Path:
    token = cluster.kubectl(
        "create", "token", NAME, "-n", OPERATOR_NAMESPACE, "--duration", "24h"
    ).stdout.strip()
    path = cluster.directory / "operator.kubeconfig"
    write_kubeconfig(
        path, cluster.server, cluster.directory / "pki" / "ca.crt", None, None, token=token
    )
    return path


@pytest.fixture(scope="session")
def operator_settings(cluster: ControlPlane) -> Path:
    path = cluster.directory / "operator-settings.yaml"
    path.write_text(yaml.safe_dump({"renderGroupId": 110, "runtimeImage": "kubevino/runtime:test"}))
    return path


@pytest.fixture(scope="session")
def operator(
    cluster: ControlPlane, operator_kubeconfig: Path, operator_settings: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        operator_kubeconfig, operator_settings, cluster.directory / "operator.log"
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def namespace(cluster: ControlPlane) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def wait_until(condition: Callable[[], T | None], timeout: float = 60, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or condition}; last: {last}")


def get(cluster: ControlPlane, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    done = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if done.returncode != 0:
        return None
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def model_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"source": {"pvc": {"claimName": "models"}}}}
    body.update(spec)
    return {
        "apiVersion": "kubevino.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def wait_for_reason(
    cluster: ControlPlane, name: str, namespace: str, reason: str, timeout: float = 60
) -> dict[str, Any]:
    """The model, once its Ready condition carries ``reason``."""

    def reached() -> dict[str, Any] | None:
        model = get(cluster, "inferencemodel", name, namespace)
        return model if model and condition(model, "Ready").get("reason") == reason else None

    return wait_until(reached, timeout, f"{name} Ready reason {reason}")
