"""The node runs the Kubernetes version the tier was asked for (scripts/versions.env, or
KUBEVINO_KUBE_VERSION), beside an API server of the same version."""

from __future__ import annotations

import json

import pytest

from kubevino_devcluster.controlplane import pinned_version
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e


def test_the_kubelet_and_api_server_are_the_pinned_version(e2e: Cluster) -> None:
    wanted = pinned_version("KUBE_VERSION")
    plane = e2e.plane
    versions = json.loads(plane.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == wanted
    for node in e2e.nodes:
        info = json.loads(plane.kubectl("get", "node", node.name, "-o", "json").stdout)
        assert info["status"]["nodeInfo"]["kubeletVersion"] == wanted
