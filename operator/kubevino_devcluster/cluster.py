"""The whole local cluster in one call: the control plane and N real nodes, each node in its own
network and mount namespace with its own fake accelerators, the project's images imported into
every node.

Everything that needs the package mirror, the Go module proxy or podman happens before the
namespaces are entered: inside them there is no route out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubevino_devcluster.controlplane import ControlPlane, control_plane, kube_binaries
from kubevino_devcluster.fakedevices import FakeDevice, fake_devices, make_devices
from kubevino_devcluster.images import built_images_saved
from kubevino_devcluster.mountns import shared_subtree
from kubevino_devcluster.netns import NetworkNamespace, cluster_network
from kubevino_devcluster.node import Node, ensure_node_packages, host_mount_points, pause_archive


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster as a user asks for it.

    Fake accelerators are device nodes with the real majors (no driver behind them: open()
    gives ENXIO once access is granted), visible only on this node under the cluster's
    ``device_root``."""

    name: str = "kv-node"
    # A fake Intel GPU: dri/renderD128 (226:128), owned root:render_gid, mode 0660.
    render_gid: int | None = None
    # A fake Intel NPU: accel/accel0 (261:0), owned root:render_gid (root:root without one).
    npu: bool = False
    # Set on the Node once it registers (the kubelet refuses most *.kubernetes.io labels).
    labels: tuple[tuple[str, str], ...] = ()
    # The fake nodes carry /dev/null's numbers instead, so open() succeeds once the pod may
    # open them, and an AUTO:GPU,CPU model serves (on CPU: no GPU behind the node).
    openable: bool = False

    def devices(self) -> tuple[FakeDevice, ...]:
        return fake_devices(self.render_gid, self.npu, self.openable)


@dataclass
class DevCluster:
    plane: ControlPlane
    nodes: list[Node]
    namespace: NetworkNamespace  # the hub: control plane, first node, the calling thread
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

    @property
    def device_root(self) -> Path:
        """One path that shows each node its own fake devices: the operator setting
        ``deviceRoot`` and the chart value ``nodeAgent.deviceRoot`` for this cluster."""
        return self.directory / "dev"

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def spec_of(self, name: str) -> NodeSpec:
        return next(spec for spec in self.specs if spec.name == name)


def prepare(images: Sequence[str]) -> tuple[dict[str, str], dict[str, Path]]:
    """Every download and build the cluster needs, done while the network is still reachable."""
    ensure_node_packages()
    kube_binaries()
    pause_archive()
    return built_images_saved(tuple(images)) if images else ({}, {})


def delete_all_pods(plane: ControlPlane, nodes: Sequence[Node], timeout: float = 90) -> None:
    """Every pod deleted through the API (so the kubelets tear down their networks and mounts)
    with nothing left to recreate them, and no container left on any node."""
    plane.stop_controllers()
    plane.kubectl(
        "delete", "pods", "--all", "--all-namespaces", "--grace-period", "5",
        "--wait=false", check=False,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = plane.kubectl("get", "pods", "--all-namespaces", "-o", "name", check=False)
        if not left.stdout.strip() and not any(node.tasks() for node in nodes):
            return
        time.sleep(1)


def _import_images(node: Node, archives: dict[str, Path]) -> None:
    for archive in archives.values():
        node.import_image(archive)


def _validate(nodes: Sequence[NodeSpec]) -> None:
    names = [spec.name for spec in nodes]
    if not names:
        raise ValueError("a cluster needs at least one node")
    if len(set(names)) != len(names):
        raise ValueError(f"node names must differ: {names}")
    if len(names) > 200:
        raise ValueError("at most 200 nodes (one /24 of pod addresses each under 10.88.0.0/16)")


@contextmanager
def dev_cluster(
    directory: Path,
    nodes: Sequence[NodeSpec] = (NodeSpec(),),
    images: Sequence[str] = ("operator", "runtime"),
) -> Iterator[DevCluster]:
    """The cluster, up and Ready, with the calling thread inside the hub's network namespace
    (the control plane's and the first node's); all of it stopped and removed on exit."""
    _validate(nodes)
    built, archives = prepare(images)
    device_root = directory / "dev"
    directory.mkdir(parents=True, exist_ok=True)
    with (
        shared_subtree(directory),
        cluster_network(len(nodes)) as networks,
        networks[0].namespace.entered(),
        host_mount_points([device_root]),
        control_plane(directory / "plane", node_ip=networks[0].ip) as plane,
        ExitStack() as running,
    ):
        started: list[Node] = []

        def stop_all() -> None:
            with ExitStack() as stops:
                for node in started:
                    stops.callback(node.stop)  # the last started stops first
                # First, while every kubelet still runs: the pods go through the API.
                delete_all_pods(plane, started)

        running.callback(stop_all)
        for spec, network in zip(nodes, networks, strict=True):
            node = Node(
                directory / spec.name, plane, network, name=spec.name, device_root=device_root
            )
            make_devices(node.devices, spec.devices())
            started.append(node)
            node.start()
            if spec.labels:
                plane.kubectl(
                    "label", "node", spec.name, "--overwrite",
                    *(f"{key}={value}" for key, value in spec.labels),
                )  # fmt: skip
        # Side by side: unpacking one node's images waits on the disk more than on a core.
        with ThreadPoolExecutor(max_workers=len(started)) as importing:
            for _ in importing.map(lambda node: _import_images(node, archives), started):
                pass
        yield DevCluster(plane, started, networks[0].namespace, built, directory, list(nodes))
