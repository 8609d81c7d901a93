"""Node tier: the control plane and a real node (kubelet, containerd, runc, CNI, kube-proxy)
inside a network namespace this tier makes, our images imported, the chart installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevino_devcluster.cluster import DevCluster, dev_cluster
from tests.e2e.helpers import helm

MODELS = "models"


Cluster = DevCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The multi-node tests (tests/e2e/multinode) run before the rest of this tier: the
    one-node cluster is package-scoped here, so once started it lives until this whole
    package (subpackage included) is done, and two clusters must not run at once (both
    mount over the host's /var/lib/kubelet)."""
    here = Path(__file__).parent
    positions = [i for i, item in enumerate(items) if here in item.path.parents]
    tier = [items[i] for i in positions]
    multinode = here / "multinode"
    tier.sort(key=lambda item: multinode not in item.path.parents)  # stable
    for position, item in zip(positions, tier, strict=True):
        items[position] = item


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
