"""Network namespaces made by the cluster, and a way to step the calling thread into one.

Each node lives in a namespace of its own. The first node's namespace also holds the control
plane and the calling thread (the "hub"). With more than one node, every node's address sits on
a veth pair whose other end is a port of one bridge in a namespace of its own (the "switch"):
bridged there rather than in the hub, where br_netfilter would show the hub's conntrack each
packet a second time on its way across the bridge, after kube-proxy rewrote it (a Service's
connections from the hub to pods on other nodes were dropped as conntrack clashes). Nothing here
has a route out of the machine: the only links are loopback, those veth pairs and the bridge,
all inside namespaces we made.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

NODE_LINK = "kvnode0"  # the node's address lives here, in every node's namespace
HUB_PEER = "kvnode1"  # the first node's veth peer; a port of the switch with more nodes
SWITCH_BRIDGE = "kvlan0"  # in the switch namespace: the segment every node's address is on
NODE_SUBNET_PREFIX = "10.77.0"
# Every node's pods get a /24 of this range (kubelet's 110 pods per node fit many times over).
CLUSTER_POD_RANGE = "10.88.0.0/16"


def node_address(index: int) -> str:
    return f"{NODE_SUBNET_PREFIX}.{2 + index}"


def pod_range(index: int) -> str:
    return f"10.88.{index}.0/24"


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class NetworkNamespace:
    name: str
    node_ip: str = node_address(0)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread (and every process it starts) inside the namespace.

        setns moves only the calling thread, which is what pytest's fixtures and tests run
        on; the original namespace comes back on exit."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(target)
            os.close(original)


@dataclass(frozen=True)
class NodeNetwork:
    """One node's place on the cluster network."""

    namespace: NetworkNamespace
    pod_range: str

    @property
    def ip(self) -> str:
        return self.namespace.node_ip


@contextmanager
def _added(name: str) -> Iterator[None]:
    _ip("netns", "add", name)
    try:
        yield
    finally:
        _ip("netns", "delete", name)


def _sysctl(namespace: NetworkNamespace, setting: str) -> None:
    # nsenter, not `ip netns exec`: nothing here needs its remount of /sys.
    subprocess.run(
        ["nsenter", f"--net={namespace.path}", "sysctl", "-qw", setting],
        check=True,
        capture_output=True,
    )


@contextmanager
def network_namespace(prefix: str = "kv-e2e") -> Iterator[NetworkNamespace]:
    """The hub: the first node's address on one end of a veth pair whose ends both stay
    inside (no dummy links on these machines)."""
    namespace = NetworkNamespace(f"{prefix}-{uuid.uuid4().hex[:8]}")
    with _added(namespace.name):
        inside = ("-n", namespace.name)
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "add", NODE_LINK, "type", "veth", "peer", "name", HUB_PEER)
        _ip(*inside, "addr", "add", f"{namespace.node_ip}/24", "dev", NODE_LINK)
        _ip(*inside, "link", "set", NODE_LINK, "up")
        _ip(*inside, "link", "set", HUB_PEER, "up")
        # A default route for components that look for one; it ends at our own veth peer.
        _ip(*inside, "route", "add", "default", "dev", NODE_LINK)
        yield namespace


def _switch(switch: NetworkNamespace, hub: NetworkNamespace) -> None:
    """The bridge, with the hub's veth peer moved over as its first port."""
    _ip("-n", switch.name, "link", "set", "lo", "up")
    _ip("-n", switch.name, "link", "add", SWITCH_BRIDGE, "type", "bridge")
    _ip("-n", hub.name, "link", "set", HUB_PEER, "netns", switch.name)
    _ip("-n", switch.name, "link", "set", HUB_PEER, "master", SWITCH_BRIDGE)
    _ip("-n", switch.name, "link", "set", HUB_PEER, "up")
    _ip("-n", switch.name, "link", "set", SWITCH_BRIDGE, "up")
    if Path("/proc/sys/net/bridge").is_dir():
        # A plain switch: frames crossing it never go through iptables or conntrack.
        _sysctl(switch, "net.bridge.bridge-nf-call-iptables=0")


def _join(switch: NetworkNamespace, node: NetworkNamespace, index: int) -> None:
    """A node's namespace on the switch: its address on a veth whose peer is a port."""
    port = f"kvlan{index}"
    _ip("-n", switch.name, "link", "add", port, "type", "veth", "peer", "name", NODE_LINK,
        "netns", node.name)  # fmt: skip
    _ip("-n", switch.name, "link", "set", port, "master", SWITCH_BRIDGE)
    _ip("-n", switch.name, "link", "set", port, "up")
    inside = ("-n", node.name)
    _ip(*inside, "link", "set", "lo", "up")
    _ip(*inside, "addr", "add", f"{node.node_ip}/24", "dev", NODE_LINK)
    _ip(*inside, "link", "set", NODE_LINK, "up")
    _ip(*inside, "route", "add", "default", "dev", NODE_LINK)


@contextmanager
def cluster_network(count: int, prefix: str = "kv-e2e") -> Iterator[list[NodeNetwork]]:
    """``count`` nodes' namespaces on one segment, each node's pod range routed to it from
    every other namespace; the first is the hub."""
    with ExitStack() as made:
        hub = made.enter_context(network_namespace(prefix))
        namespaces = [hub]
        switch = NetworkNamespace(f"{hub.name}-lan", "")
        if count > 1:
            made.enter_context(_added(switch.name))
            _switch(switch, hub)
        for index in range(1, count):
            node = NetworkNamespace(f"{hub.name}-{index}", node_address(index))
            made.enter_context(_added(node.name))
            _join(switch, node, index)
            namespaces.append(node)
        networks = [NodeNetwork(ns, pod_range(index)) for index, ns in enumerate(namespaces)]
        for network in networks:
            # Pods' packets to other nodes' pods pass through their node's namespace.
            _sysctl(network.namespace, "net.ipv4.ip_forward=1")
            for other in networks:
                if other is not network:
                    _ip("-n", network.namespace.name, "route", "add", other.pod_range,
                        "via", other.ip, "dev", NODE_LINK)  # fmt: skip
        yield networks
