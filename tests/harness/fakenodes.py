"""Nodes without kubelets: Node objects that report Ready with room for pods, their leases renewed
so the node lifecycle controller keeps them Ready. The scheduler places pods on them as on real
nodes (the pods then stay Pending: nothing runs them), which is what a control-plane-only
cluster lacks to show how many models spread over several nodes cost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import yaml

from kubevino_devcluster.controlplane import ControlPlane

# Under the node lifecycle controller's grace period (40 s) with room to spare.
LEASE_RENEW_SECONDS = 10
PODS_PER_NODE = "250"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_manifest(name: str) -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "256Gi", "pods": PODS_PER_NODE}
    now = _now().split(".")[0] + "Z"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "a fake node: nothing runs its pods",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def lease_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _now()},
    }


@contextmanager
def fake_nodes(plane: ControlPlane, count: int, prefix: str = "fake-node-") -> Iterator[list[str]]:
    """``count`` Ready nodes for as long as the block runs; their names."""
    names = [f"{prefix}{index}" for index in range(count)]
    plane.kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(map(node_manifest, names)))
    # Written through the status subresource too, as a kubelet does: the API server need not
    # keep the status a create carries.
    for name in names:
        plane.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge",
            "-p", yaml.safe_dump({"status": node_manifest(name)["status"]}),
        )  # fmt: skip
    stop = threading.Event()

    def renew() -> None:
        while True:
            plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(map(lease_manifest, names)))
            if stop.wait(LEASE_RENEW_SECONDS):
                return

    renewer = threading.Thread(target=renew, name="fake-node-leases", daemon=True)
    renewer.start()
    try:
        yield names
    finally:
        stop.set()
        renewer.join()
        plane.kubectl("delete", "node", *names, "--wait=false")
