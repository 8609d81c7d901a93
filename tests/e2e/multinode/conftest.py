"""Node tier on three nodes, each in its own network and mount namespace with its own fake
accelerators, the chart installed with the node agent.

* ``kv-a``: an Intel GPU whose render node belongs to GID 110 (pool a);
* ``kv-b``: an Intel GPU with GID 4747 and an NPU (pool b);
* ``kv-c``: no accelerator (pool c).

The fake nodes carry /dev/null's numbers so that a model granted access opens them and serves
(on CPU: OpenVINO finds no GPU or NPU behind them); with the wrong group open() still fails with
EACCES, so a model that serves had the node's GID. The GPU and NPU nodes carry the labels Node
Feature Discovery would give them, for node selection without the agent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubevino_devcluster.cluster import DevCluster, NodeSpec, dev_cluster
from tests.e2e.helpers import chart_values, helm, node_model_directory

MODELS = "models"
POOL = "kubevino.test/pool"
GPU_FEATURE = "intel.feature.node.kubernetes.io/gpu"
NPU_FEATURE = "intel.feature.node.kubernetes.io/npu"
NODE_A = NodeSpec(
    "kv-a", render_gid=110, openable=True, labels=((POOL, "a"), (GPU_FEATURE, "true"))
)
NODE_B = NodeSpec(
    "kv-b",
    render_gid=4747,
    npu=True,
    openable=True,
    labels=((POOL, "b"), (GPU_FEATURE, "true"), (NPU_FEATURE, "true")),
)
NODE_C = NodeSpec("kv-c", labels=((POOL, "c"),))


@dataclass(frozen=True)
class Installed:
    cluster: DevCluster
    models: Path  # the bundled model, readable on every node (one host filesystem)

    def base_values(self) -> dict[str, Any]:
        """What every test's settings share: privileged host devices under the cluster's
        device root, the node agent scanning it every 2 s."""
        root = str(self.cluster.device_root)
        return {
            "allowPrivileged": True,
            "deviceRoot": root,
            "nodeAgent.enabled": True,
            "nodeAgent.deviceRoot": root,
            "nodeAgent.intervalSeconds": 2,
        }


@pytest.fixture(scope="package")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    if os.geteuid() != 0:
        pytest.skip("the node tier runs kubelets, containerd and namespaces: run as root")
    with dev_cluster(tmp_path_factory.mktemp("multinode"), (NODE_A, NODE_B, NODE_C)) as cluster:
        yield cluster


@pytest.fixture(scope="package")
def installed(three_nodes: DevCluster) -> Installed:
    """The chart installed with real helm, the node agent on every node."""
    cluster = three_nodes
    models = node_model_directory(cluster.directory / "models")
    found = Installed(cluster, models)
    helm(
        cluster.plane,
        "install", "kubevino", "charts/kubevino",
        "--namespace", "kubevino-system", "--create-namespace",
        *chart_values(**found.base_values()), "--wait", "--timeout", "300s",
    )  # fmt: skip
    cluster.plane.kubectl("create", "namespace", MODELS)
    return found
