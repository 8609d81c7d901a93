"""Node tier: the control plane and a real node (kubelet, containerd, runc, CNI, kube-proxy)
inside a network namespace this tier makes, our images imported, the chart installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubevino_devcluster.controlplane import ControlPlane, control_plane, kube_binaries
from kubevino_devcluster.images import built_images_saved
from kubevino_devcluster.netns import NetworkNamespace, network_namespace
from kubevino_devcluster.node import Node, ensure_node_packages, pause_archive
from tests.e2e.helpers import helm

MODELS = "models"


@dataclass
class Cluster:
    plane: ControlPlane
    node: Node
    namespace: NetworkNamespace
    images: dict[str, str]
    directory: Path


@pytest.fixture(scope="package")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the node tier runs a kubelet, containerd and network namespaces: run as root")
    directory = tmp_path_factory.mktemp("e2e")
    # Everything that needs the package mirror or the Go module proxy happens here, before the
    # namespace: inside it there is no route out.
    ensure_node_packages()
    kube_binaries()
    pause_archive()
    images, archives = built_images_saved(("operator", "runtime"))
    with (
        network_namespace() as namespace,
        namespace.entered(),
        control_plane(directory / "plane", node_ip=namespace.node_ip) as plane,
    ):
        node = Node(directory / "node", plane, namespace.node_ip)
        try:
            node.start()
            for archive in archives.values():
                node.import_image(archive)
            yield Cluster(plane, node, namespace, images, directory)
        finally:
            node.stop()


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
