"""ResourceClaim mode: devices through Dynamic Resource Allocation, unprivileged, no render GID."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pydantic
import pytest

from kubevino_operator.discovery import DraFacts, Inventory
from kubevino_operator.render import claim_template_name, render
from kubevino_operator.resolve import Refusal
from tests.unit.builders import find, model, pod_spec, refusal, rendered, server, settings

KUBERNETES_VERSION = "1.34.0"
NO_RENDER_GROUP = settings()  # ResourceClaim pods need no renderGroupId


def _claim_model(target: str = "GPU", **claim: Any) -> Any:
    device: dict[str, Any] = {"targetDevice": target, "accessMode": "ResourceClaim"}
    if claim:
        device["resourceClaim"] = claim
    return model(device=device)


def _requests(result: Any) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = find(result, "ResourceClaimTemplate")["spec"]["spec"][
        "devices"
    ]["requests"]
    return requests


def test_a_gpu_model_gets_a_claim_template_and_nothing_privileged() -> None:
    result = rendered(_claim_model(), NO_RENDER_GROUP)
    template = find(result, "ResourceClaimTemplate")
    assert template["metadata"]["name"] == claim_template_name(result.model) == "resnet-devices"
    assert _requests(result) == [
        {
            "name": "intel-gpu",
            "exactly": {
                "deviceClassName": "gpu.intel.com",
                "allocationMode": "ExactCount",
                "count": 1,
            },
        }
    ]
    spec = pod_spec(result)
    assert spec["resourceClaims"] == [
        {"name": "devices", "resourceClaimTemplateName": "resnet-devices"}
    ]
    assert server(result)["resources"] == {"claims": [{"name": "devices"}]}  # no i915 resource
    assert "supplementalGroups" not in spec["securityContext"]  # CDI hands over uid/gid
    assert not any("hostPath" in volume for volume in spec["volumes"])
    assert "nodeSelector" not in spec  # the scheduler places by the driver's ResourceSlices
    assert server(result)["securityContext"]["allowPrivilegeEscalation"] is False
    assert result.pod_security_level == "restricted"
    env = {entry["name"]: entry["value"] for entry in server(result)["env"]}
    assert env["KUBEVINO_DEVICE_PATHS"] == "GPU=/dev/dri"  # the in-pod device check still runs
    for obj in result.objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_device_count_follows_the_target_and_only_devices_are_claimed() -> None:
    two = rendered(_claim_model("MULTI:GPU.0,GPU.1"), NO_RENDER_GROUP)
    assert _requests(two)[0]["exactly"]["count"] == 2
    with_cpu = rendered(_claim_model("AUTO:GPU,CPU"), NO_RENDER_GROUP)
    assert [request["name"] for request in _requests(with_cpu)] == ["intel-gpu"]
    cpu_only = rendered(_claim_model("CPU"), NO_RENDER_GROUP)
    assert all(obj["kind"] != "ResourceClaimTemplate" for obj in cpu_only.objects)
    assert "resourceClaims" not in pod_spec(cpu_only)


def test_selectors_and_minimum_memory_narrow_the_devices() -> None:
    result = rendered(
        _claim_model(
            selectors=['device.attributes["gpu.intel.com"].family == "Arc"'],
            minMemory="8Gi",
        ),
        NO_RENDER_GROUP,
    )
    assert _requests(result)[0]["exactly"]["selectors"] == [
        {"cel": {"expression": 'device.attributes["gpu.intel.com"].family == "Arc"'}},
        {
            "cel": {
                "expression": "device.capacity[device.driver].memory"
                '.compareTo(quantity("8Gi")) >= 0'
            }
        },
    ]


def test_the_device_class_comes_from_the_spec_then_the_settings_then_the_profile() -> None:
    renamed = settings(draDeviceClasses={"intel-gpu": "arc.example.com"})
    assert _requests(rendered(_claim_model(), renamed))[0]["exactly"]["deviceClassName"] == (
        "arc.example.com"
    )
    asked = _claim_model(deviceClassName="lab.example.com")
    assert _requests(rendered(asked, renamed))[0]["exactly"]["deviceClassName"] == (
        "lab.example.com"
    )


def test_a_claim_the_user_manages_is_referenced_and_never_rendered() -> None:
    shared = rendered(_claim_model(claimName="team-gpu"), NO_RENDER_GROUP)
    assert pod_spec(shared)["resourceClaims"] == [
        {"name": "devices", "resourceClaimName": "team-gpu"}
    ]
    assert all(obj["kind"] != "ResourceClaimTemplate" for obj in shared.objects)
    templated = rendered(_claim_model(claimTemplateName="their-template"), NO_RENDER_GROUP)
    assert pod_spec(templated)["resourceClaims"] == [
        {"name": "devices", "resourceClaimTemplateName": "their-template"}
    ]
    assert all(obj["kind"] != "ResourceClaimTemplate" for obj in templated.objects)


def test_an_accelerator_without_a_dra_driver_is_refused_with_the_mode_that_works() -> None:
    npu = refusal(_claim_model("NPU"), NO_RENDER_GROUP)
    assert npu.reason == "AccessModeUnsupported"
    assert "no DRA driver for NPUs" in npu.message
    assert "accessMode to DevicePlugin" in npu.message


def test_a_resource_claim_section_without_the_mode_is_refused() -> None:
    given = model(device={"targetDevice": "GPU", "resourceClaim": {"minMemory": "4Gi"}})
    refused = refusal(given)
    assert refused.reason == "AccessModeUnsupported"
    assert "accessMode: ResourceClaim" in refused.message
    by_default = settings(defaultAccessMode="ResourceClaim")
    assert _requests(rendered(given, by_default))[0]["exactly"]["selectors"]


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ({"claimName": "a", "claimTemplateName": "b"}, "not both"),
        ({"claimName": "a", "selectors": ["true"]}, "carries its own device class"),
    ],
)
def test_contradicting_claim_fields_are_refused_at_admission(
    claim: dict[str, Any], message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _claim_model(**claim)


def test_the_claim_section_needs_the_resource_claim_mode_at_admission() -> None:
    with pytest.raises(pydantic.ValidationError, match="needs accessMode ResourceClaim"):
        model(
            device={
                "targetDevice": "GPU",
                "accessMode": "DevicePlugin",
                "resourceClaim": {"minMemory": "4Gi"},
            }
        )


def _with_cluster(facts: DraFacts) -> Any:
    return render(_claim_model(), NO_RENDER_GROUP, Inventory(dra=facts))


def test_a_cluster_without_dra_or_without_the_class_refuses_with_the_fix() -> None:
    old = _with_cluster(DraFacts(served=False))
    assert isinstance(old, Refusal) and old.reason == "ResourceClaimUnsupported"
    assert "resource.k8s.io/v1" in old.message
    missing = _with_cluster(DraFacts(True, frozenset({"gpu-vfio.intel.com"})))
    assert isinstance(missing, Refusal) and missing.reason == "DeviceClassMissing"
    assert "the cluster has gpu-vfio.intel.com" in missing.message
    assert not isinstance(_with_cluster(DraFacts(True, frozenset({"gpu.intel.com"}))), Refusal)


def test_the_users_own_claim_is_not_checked_against_the_classes() -> None:
    theirs = render(
        _claim_model(claimName="team-gpu"), NO_RENDER_GROUP, Inventory(dra=DraFacts(True))
    )
    assert not isinstance(theirs, Refusal)
