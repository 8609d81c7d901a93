"""Which node a model lands on and which render GIDs its pods get, on nodes that differ.

The node agent labels the GPU and NPU nodes (never the node without an accelerator) and
annotates each one's render GID. With node discovery, a GPU model whose node selector picks
pool b gets only b's GID (4747) and serves there; one without a selector gets both GIDs and
lands on a GPU node; a HostDevices NPU model lands only where the NPU is, both its replicas
though the default spread would rather not. ``renderGroupIdsByPool`` without discovery (node
selection by the labels Node Feature Discovery gives) does the same. A node that loses its
device loses its label, and a model pinned there says ``DeviceMissing``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kubevino_devcluster.fakedevices import make_devices, remove_devices
from kubevino_operator.discovery import DISCOVERED_LABEL, RENDER_GIDS_ANNOTATION
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.helpers import port_forward, upgrade_settings
from tests.e2e.multinode.common import apply, delete_models, node_labels, pods, ready
from tests.e2e.multinode.conftest import (
    GPU_FEATURE,
    MODELS,
    NODE_A,
    NODE_B,
    NODE_C,
    NPU_FEATURE,
    POOL,
    Installed,
)

pytestmark = pytest.mark.e2e

GPU_LABEL = "kubevino.io/accelerator-intel-gpu"
NPU_LABEL = "kubevino.io/accelerator-intel-npu"
GID_A, GID_B = NODE_A.render_gid, NODE_B.render_gid
# Settings each way of knowing the nodes' render GIDs adds to the shared ones.
WAYS: dict[str, dict[str, Any]] = {
    "renderGroupIdsByPool": {
        "renderGroupIdsByPool": [
            {"nodeSelector": {POOL: "a"}, "gid": GID_A},
            {"nodeSelector": {POOL: "b"}, "gid": GID_B},
        ]
    },
    "nodeDiscovery": {"nodeDiscovery": True},
}
# The label a HostDevices pod is steered by, each way.
GPU_NODE_LABEL = {"renderGroupIdsByPool": GPU_FEATURE, "nodeDiscovery": GPU_LABEL}
NPU_NODE_LABEL = {"renderGroupIdsByPool": NPU_FEATURE, "nodeDiscovery": NPU_LABEL}


@pytest.fixture(scope="module")
def reported(installed: Installed) -> Installed:
    """The node agent has reported on every node."""
    cluster = installed.cluster

    def all_reported() -> bool:
        return all(
            node_labels(cluster, spec.name).get(DISCOVERED_LABEL) == "true"
            for spec in (NODE_A, NODE_B, NODE_C)
        )

    wait_until(all_reported, 120, "the node agent's reports on every node")
    return installed


def _annotations(installed: Installed, node: str) -> dict[str, str]:
    found = get(installed.cluster.plane, "node", node, "")
    assert found is not None
    annotations: dict[str, str] = found["metadata"].get("annotations") or {}
    return annotations


def test_the_node_agent_labels_the_accelerator_nodes_with_their_render_gids(
    reported: Installed,
) -> None:
    cluster = reported.cluster
    labels = {spec.name: node_labels(cluster, spec.name) for spec in (NODE_A, NODE_B, NODE_C)}
    assert labels["kv-a"].get(GPU_LABEL) == "true" and NPU_LABEL not in labels["kv-a"]
    assert labels["kv-b"].get(GPU_LABEL) == "true" and labels["kv-b"].get(NPU_LABEL) == "true"
    assert not {GPU_LABEL, NPU_LABEL} & labels["kv-c"].keys()
    assert _annotations(reported, "kv-a")[RENDER_GIDS_ANNOTATION] == str(GID_A)
    assert _annotations(reported, "kv-b")[RENDER_GIDS_ANNOTATION] == str(GID_B)
    assert RENDER_GIDS_ANNOTATION not in _annotations(reported, "kv-c")


def _pod_spec(pod: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = pod["spec"]
    return spec


def _diagnostics(installed: Installed, pod: dict[str, Any]) -> dict[str, Any]:
    name = pod["metadata"]["name"]
    with port_forward(installed.cluster.plane, MODELS, f"pod/{name}", 8000) as (rest,):
        report: dict[str, Any] = httpx.get(
            f"http://127.0.0.1:{rest}/kubevino/diagnostics", timeout=10
        ).json()
    return report


@pytest.mark.parametrize("way", list(WAYS))
def test_models_land_where_their_device_is_with_that_nodes_render_gid(
    reported: Installed, way: str
) -> None:
    installed = reported
    cluster = installed.cluster
    upgrade_settings(cluster.plane, **installed.base_values(), **WAYS[way])
    names = ("gpu-pool-b", "gpu-anywhere", "npu")
    try:
        apply(installed, "gpu-pool-b", "AUTO:GPU,CPU", node_selector={POOL: "b"})
        apply(installed, "gpu-anywhere", "AUTO:GPU,CPU")
        apply(installed, "npu", "AUTO:NPU,CPU", replicas=2)
        for name in names:
            ready(cluster, name)

        (pool_b,) = pods(cluster, "gpu-pool-b")
        assert _pod_spec(pool_b)["nodeName"] == "kv-b"
        assert _pod_spec(pool_b)["nodeSelector"] == {GPU_NODE_LABEL[way]: "true", POOL: "b"}
        assert _pod_spec(pool_b)["securityContext"]["supplementalGroups"] == [GID_B]
        # It serves because its group opens b's render node (GID 4747), as the server saw it.
        report = _diagnostics(installed, pool_b)
        (device,) = report["devices"]["deviceNodes"]
        assert (device["path"], device["access"], device["ownerGid"]) == (
            "/dev/dri/renderD128",
            "Usable",
            GID_B,
        )

        (anywhere,) = pods(cluster, "gpu-anywhere")
        assert _pod_spec(anywhere)["nodeName"] in {"kv-a", "kv-b"}
        assert _pod_spec(anywhere)["nodeSelector"] == {GPU_NODE_LABEL[way]: "true"}
        assert _pod_spec(anywhere)["securityContext"]["supplementalGroups"] == [GID_A, GID_B]

        npu = pods(cluster, "npu")
        assert [_pod_spec(pod)["nodeName"] for pod in npu] == ["kv-b", "kv-b"]
        assert _pod_spec(npu[0])["nodeSelector"] == {NPU_NODE_LABEL[way]: "true"}
    finally:
        delete_models(cluster, *names)


NPU_OF_B = tuple(d for d in NODE_B.devices() if d.relative_path.startswith("accel/"))


@pytest.fixture
def device_put_back(reported: Installed) -> Iterator[Installed]:
    """Node b's NPU device node as it was, whatever the test did to it."""
    try:
        yield reported
    finally:
        make_devices(reported.cluster.node_named("kv-b").devices, NPU_OF_B)
        delete_models(reported.cluster, "npu-on-b")


def test_a_node_that_loses_its_device_is_unlabelled_and_a_model_pinned_there_says_so(
    device_put_back: Installed,
) -> None:
    installed = device_put_back
    cluster = installed.cluster
    upgrade_settings(cluster.plane, **installed.base_values(), **WAYS["nodeDiscovery"])
    apply(installed, "npu-on-b", "AUTO:NPU,CPU", node_selector={POOL: "b"})
    ready(cluster, "npu-on-b")

    # The NPU goes (as when it is unplugged or its driver unloaded); the GPU stays.
    remove_devices(cluster.node_named("kv-b").devices, NPU_OF_B)

    def unlabelled() -> dict[str, str] | None:
        labels = node_labels(cluster, "kv-b")
        return labels if NPU_LABEL not in labels else None

    labels = wait_until(unlabelled, 60, "the agent taking kv-b's NPU label away")
    assert labels.get(GPU_LABEL) == "true"

    def missing() -> dict[str, Any] | None:
        model = get(cluster.plane, "inferencemodel", "npu-on-b", MODELS)
        found = condition(model, "DeviceAccess")
        return model if found.get("reason") == "DeviceMissing" else None

    model = wait_until(missing, 60, "DeviceAccess=False (DeviceMissing)")
    device_access = condition(model, "DeviceAccess")
    assert device_access["status"] == "False"
    assert "no node the pods may land on reports intel-npu" in device_access["message"]
    assert condition(model, "Ready")["status"] == "False"
