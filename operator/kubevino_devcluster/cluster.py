"""The whole local cluster in one call: a network namespace, the control plane and real nodes
inside it, the project's images imported into every node.

Everything that needs the package mirror, the Go module proxy or podman happens before the
namespace is entered: inside it there is no route out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubevino_devcluster.controlplane import ControlPlane, control_plane, kube_binaries
from kubevino_devcluster.images import built_images_saved
from kubevino_devcluster.netns import NetworkNamespace, network_namespace
from kubevino_devcluster.node import Node, ensure_node_packages, pause_archive


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster as a user asks for it.

    Fake accelerators are device nodes with the real majors (no driver behind them: open()
    gives ENXIO once access is granted), visible only on this node."""

    name: str = "kv-node"
    # A fake Intel GPU: dri/renderD128 (226:128), owned root:render_gid, mode 0660.
    render_gid: int | None = None
    # A fake Intel NPU: accel/accel0 (261:0).
    npu: bool = False
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class DevCluster:
    plane: ControlPlane
    nodes: list[Node]
    namespace: NetworkNamespace
    images: dict[str, str]
    directory: Path
    specs: list[NodeSpec] = field(default_factory=list)

    @property
    def node(self) -> Node:
        """The first node (the only one of a one-node cluster)."""
        return self.nodes[0]

    @property
    def kubeconfig(self) -> Path:
        return self.plane.admin_kubeconfig


def prepare(images: Sequence[str]) -> tuple[dict[str, str], dict[str, Path]]:
    """Every download and build the cluster needs, done while the network is still reachable."""
    ensure_node_packages()
    kube_binaries()
    pause_archive()
    return built_images_saved(tuple(images)) if images else ({}, {})


@contextmanager
def dev_cluster(
    directory: Path,
    nodes: Sequence[NodeSpec] = (NodeSpec(),),
    images: Sequence[str] = ("operator", "runtime"),
) -> Iterator[DevCluster]:
    """The cluster, up and Ready, with the calling thread inside its network namespace; all of
    it stopped and removed on exit."""
    built, archives = prepare(images)
    with (
        network_namespace() as namespace,
        namespace.entered(),
        control_plane(directory / "plane", node_ip=namespace.node_ip) as plane,
        ExitStack() as running,
    ):
        started: list[Node] = []
        for spec in nodes:
            node = Node(directory / spec.name, plane, namespace.node_ip, name=spec.name)
            running.callback(node.stop)
            node.start()
            for archive in archives.values():
                node.import_image(archive)
            started.append(node)
        yield DevCluster(plane, started, namespace, built, directory, list(nodes))
