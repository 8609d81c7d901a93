"""ResourceClaim mode against a real API server: the DeviceClass gates the render, the claim
template follows the model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import ControlPlane
from tests.cluster.conftest import condition, get, model_manifest, wait_for_reason, wait_until
from tests.cluster.test_reconcile import apply, owned_by
from tests.harness.operator import OperatorProcess

pytestmark = pytest.mark.cluster

# The operator re-reads DeviceClasses and ResourceSlices at most every 15 s and re-renders at
# its 20 s recheck.
NOTICED_WITHIN = 120


@pytest.fixture
def intel_gpu_class(cluster: ControlPlane) -> Iterator[dict[str, Any]]:
    device_class: dict[str, Any] = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": "gpu.intel.com"},
        "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.intel.com"'}}]},
    }
    yield device_class
    cluster.kubectl("delete", "deviceclass", "gpu.intel.com", "--ignore-not-found")


def test_a_claim_model_waits_for_its_device_class_then_gets_its_claim_template(
    cluster: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    intel_gpu_class: dict[str, Any],
) -> None:
    device = {"targetDevice": "GPU", "accessMode": "ResourceClaim"}
    apply(cluster, model_manifest("arc", namespace, device=device))
    refused = wait_for_reason(cluster, "arc", namespace, "DeviceClassMissing")
    assert "install its DRA driver" in condition(refused, "Ready")["message"]
    assert get(cluster, "deployment", "arc", namespace) is None

    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(intel_gpu_class))
    template = wait_until(
        lambda: get(cluster, "resourceclaimtemplate", "arc-devices", namespace),
        NOTICED_WITHIN,
        "the ResourceClaimTemplate once the DeviceClass exists",
    )
    model = get(cluster, "inferencemodel", "arc", namespace)
    assert model is not None and owned_by(template, model)
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    assert request["exactly"]["deviceClassName"] == "gpu.intel.com"
    deployment = wait_until(lambda: get(cluster, "deployment", "arc", namespace), 30)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [
        {"name": "devices", "resourceClaimTemplateName": "arc-devices"}
    ]
    assert "supplementalGroups" not in pod["securityContext"]
    wait_for_reason(cluster, "arc", namespace, "RollingOut")

    apply(cluster, model_manifest("arc", namespace, device={"targetDevice": "GPU"}))
    wait_until(
        lambda: get(cluster, "resourceclaimtemplate", "arc-devices", namespace) is None,
        60,
        "the claim template pruned once the model leaves ResourceClaim mode",
    )


def _device_access_reason(
    cluster: ControlPlane, name: str, namespace: str, reason: str
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = condition(get(cluster, "inferencemodel", name, namespace), "DeviceAccess")
        return found if found.get("reason") == reason else None

    return wait_until(reached, NOTICED_WITHIN, f"DeviceAccess reason {reason}")


def test_the_drivers_resource_slices_say_whether_any_node_has_a_device(
    cluster: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    intel_gpu_class: dict[str, Any],
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(intel_gpu_class))
    device = {
        "targetDevice": "GPU",
        "accessMode": "ResourceClaim",
        "resourceClaim": {"minMemory": "8Gi"},
    }
    apply(cluster, model_manifest("arc", namespace, device=device))
    # The API server compiles the memory floor's CEL (the capacity of the device's driver).
    template = wait_until(
        lambda: get(cluster, "resourceclaimtemplate", "arc-devices", namespace), 60
    )
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    floor = 'device.capacity[device.driver].memory.compareTo(quantity("8Gi")) >= 0'
    assert request["exactly"]["selectors"] == [{"cel": {"expression": floor}}]
    # The class selects driver gpu.intel.com, and no ResourceSlice of that driver exists.
    gone = _device_access_reason(cluster, "arc", namespace, "DRADriverNotRunning")
    assert "no node publishes a ResourceSlice of DRA driver gpu.intel.com" in gone["message"]
    published = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": "gpu-node-gpu.intel.com"},
        "spec": {
            "driver": "gpu.intel.com",
            "allNodes": True,
            "pool": {"name": "gpu-node", "generation": 1, "resourceSliceCount": 1},
            "devices": [{"name": "0000-03-00-0-0x56c0"}],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(published))
    try:
        # A device is published: the pods' own words decide from here (no node runs them).
        _device_access_reason(cluster, "arc", namespace, "Pending")
        model = get(cluster, "inferencemodel", "arc", namespace)
        assert model is not None and model["status"]["devices"] == []  # nothing allocated
    finally:
        cluster.kubectl("delete", "resourceslice", "gpu-node-gpu.intel.com", "--ignore-not-found")
