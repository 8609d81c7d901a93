"""Node tier: the control plane and a real node (kubelet, containerd, runc, CNI, kube-proxy)
inside a network namespace this tier makes, our images imported, the chart installed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kubevino_devcluster.cluster import DevCluster, dev_cluster
from tests.e2e.helpers import helm

MODELS = "models"


Cluster = DevCluster


@pytest.fixture(scope="package")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the node tier runs a kubelet, containerd and network namespaces: run as root")
    with dev_cluster(tmp_path_factory.mktemp("e2e")) as cluster:
        yield cluster


@pytest.fixture(scope="package")
def operator_installed(e2e: Cluster) -> Cluster:
    """The chart installed with real helm: our operator image runs as a pod on the node."""
    helm(
        e2e.plane,
        "install", "kubevino", "charts/kubevino",
        "--namespace", "kubevino-system", "--create-namespace",
        "--wait", "--timeout", "300s",
    )  # fmt: skip
    e2e.plane.kubectl("create", "namespace", MODELS)
    return e2e
