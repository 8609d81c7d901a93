"""The tier runs on the Kubernetes version it was asked for (scripts/versions.env, or
KUBEVINO_KUBE_VERSION): CI runs it on two versions, and a run that silently fell back to the
default one would prove nothing about the other."""

from __future__ import annotations

import json

import pytest

from kubevino_devcluster.controlplane import ControlPlane, pinned_version

pytestmark = pytest.mark.cluster


def test_the_api_server_and_kubectl_are_the_pinned_version(cluster: ControlPlane) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    wanted = pinned_version("KUBE_VERSION")
    assert versions["serverVersion"]["gitVersion"] == wanted
    assert versions["clientVersion"]["gitVersion"] == wanted
