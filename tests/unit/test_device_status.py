"""The DeviceAccess condition: what the server's device check said, turned into the fix."""

from __future__ import annotations

from typing import Any

import pytest

from kubevino_operator.api import InferenceModel
from kubevino_operator.devicestatus import device_access_state
from kubevino_operator.discovery import Inventory
from kubevino_operator.podhealth import diagnose
from kubevino_operator.render import Rendered, render
from kubevino_operator.settings import Settings
from kubevino_operator.status import build_status
from tests.unit.builders import model, settings

GROUP_PARAGRAPH = (
    "target_device GPU cannot run in this container: GPU: /dev/dri/renderD128 (group 110, mode "
    "0660) cannot be opened by uid 5000 in groups 5000 (EACCES): the process is not in group "
    "110. The server does not fall back to another device: GPU does not allow it."
)


def _crashed_pod(message: str, node: str = "gpu-node-7") -> dict[str, Any]:
    return {
        "metadata": {"name": "m-1"},
        "spec": {"nodeName": node},
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "message": message}},
                    "restartCount": 2,
                }
            ]
        },
    }


def _gpu(access_mode: str = "DevicePlugin", **serving: Any) -> InferenceModel:
    spec: dict[str, Any] = {"device": {"targetDevice": "GPU", "accessMode": access_mode}}
    if serving:
        spec["serving"] = serving
    return model(**spec)


def _rendered(subject: InferenceModel, with_settings: Settings, **kw: Any) -> Rendered:
    result = render(subject, with_settings, **kw)
    assert isinstance(result, Rendered), result
    return result


def test_the_runtime_verdict_in_a_termination_message_is_read_as_a_device_problem() -> None:
    problem = diagnose([_crashed_pod(f"DeviceAccess=GroupMissing: {GROUP_PARAGRAPH}")])
    assert problem is not None and problem.condition == "DeviceAccess"
    assert problem.reason == "GroupMissing" and problem.node == "gpu-node-7"
    assert problem.message.startswith("pod m-1 on node gpu-node-7: target_device GPU cannot")
    ordinary = diagnose([_crashed_pod("model m: no version in /models")])
    assert ordinary is not None and ordinary.reason == "ServerCrashing"
    assert ordinary.condition == ""
    made_up = diagnose([_crashed_pod("DeviceAccess=Sunspots: it is the sun")])
    assert made_up is not None and made_up.reason == "ServerCrashing"


def test_group_missing_names_the_gid_the_node_and_the_setting() -> None:
    with_settings = settings(renderGroupId=44)
    rendered = _rendered(_gpu(), with_settings)
    problem = diagnose([_crashed_pod(f"DeviceAccess=GroupMissing: {GROUP_PARAGRAPH}")])
    state = device_access_state(rendered, problem, False, with_settings)
    assert (state.status, state.reason) == ("False", "GroupMissing")
    assert "on node gpu-node-7 the device belongs to GID 110" in state.message
    assert "supplementalGroups [44]" in state.message
    assert "set renderGroupId: 110" in state.message and "nodeDiscovery" in state.message


@pytest.mark.parametrize(
    ("reason", "mode", "fix"),
    [
        ("CgroupDenied", "DevicePlugin", "gpu.intel.com/i915 on node gpu-node-7 handed the pod"),
        ("CgroupDenied", "HostDevices", "install the device plugin that advertises"),
        ("DeviceMissing", "HostDevices", "has no such device node under deviceRoot /dev"),
        ("DeviceMissing", "DevicePlugin", "did not hand the pod a intel-gpu device node"),
        ("DriverMissing", "DevicePlugin", "intel-gpu: the i915 or xe kernel driver"),
    ],
)
def test_each_reason_ends_with_its_fix(reason: str, mode: str, fix: str) -> None:
    with_settings = settings(renderGroupId=110, allowPrivileged=True)
    rendered = _rendered(_gpu(mode), with_settings)
    problem = diagnose([_crashed_pod(f"DeviceAccess={reason}: target_device GPU cannot run.")])
    state = device_access_state(rendered, problem, False, with_settings)
    assert (state.status, state.reason) == ("False", reason)
    assert fix in state.message.split("Fix: ")[1]


def test_refused_host_devices_are_not_allowed_with_both_ways_out() -> None:
    with_settings = settings(renderGroupId=110)
    refused = render(_gpu("HostDevices"), with_settings)
    state = device_access_state(refused, None, False, with_settings)
    assert (state.status, state.reason) == ("False", "NotAllowed")
    assert "gpu.intel.com/i915" in state.message and "allowPrivileged" in state.message


def test_cpu_needs_nothing_and_a_gpu_is_unknown_until_a_pod_checked() -> None:
    cpu = _rendered(model(), settings())
    assert device_access_state(cpu, None, False, settings()).status == "True"
    gpu = _rendered(_gpu(), settings(renderGroupId=110))
    assert device_access_state(gpu, None, False, settings()).reason == "Pending"
    serving = device_access_state(gpu, None, True, settings())
    assert (serving.status, serving.reason) == ("True", "DevicesUsable")


def test_ready_stays_false_while_device_access_is_false() -> None:
    with_settings = settings(renderGroupId=44)
    rendered = _rendered(_gpu(), with_settings)
    pods = [_crashed_pod(f"DeviceAccess=GroupMissing: {GROUP_PARAGRAPH}")]
    deployment = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1},
    }
    status = build_status(
        generation=1,
        previous=None,
        now="2026-11-23T00:00:00Z",
        rendered=rendered,
        deployment=deployment,
        pod_problem=diagnose(pods),
        settings=with_settings,
    )
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Ready"] == ("False", "GroupMissing")
    assert conditions["DeviceAccess"] == ("False", "GroupMissing")
    assert conditions["Degraded"] == ("True", "GroupMissing")


def _node(name: str, gid: int | None, *accelerators: str, **labels: str) -> dict[str, Any]:
    all_labels = {"kubevino.io/discovered": "true", **labels}
    all_labels.update({f"kubevino.io/accelerator-{a}": "true" for a in accelerators})
    annotations = {"kubevino.io/render-gids": str(gid)} if gid is not None else {}
    return {"metadata": {"name": name, "labels": all_labels, "annotations": annotations}}


def test_with_discovery_the_pods_get_the_render_gids_of_the_nodes_they_may_land_on() -> None:
    inventory = Inventory.from_nodes(
        [
            _node("ubuntu-1", 110, "intel-gpu", pool="ubuntu"),
            _node("fedora-1", 105, "intel-gpu", pool="fedora"),
            _node("npu-1", 992, "intel-npu", pool="ubuntu"),
            _node("cpu-1", None),
        ]
    )
    with_settings = settings(nodeDiscovery=True, allowPrivileged=True)
    anywhere = _rendered(_gpu("HostDevices"), with_settings, inventory=inventory)
    assert anywhere.resolution.groups == (105, 110)
    pod = anywhere.objects[1]["spec"]["template"]["spec"]
    assert pod["securityContext"]["supplementalGroups"] == [105, 110]
    assert pod["nodeSelector"] == {"kubevino.io/accelerator-intel-gpu": "true"}
    ubuntu = _rendered(
        _gpu("HostDevices", nodeSelector={"pool": "ubuntu"}), with_settings, inventory=inventory
    )
    assert ubuntu.resolution.groups == (110,)
    state = device_access_state(ubuntu, None, False, with_settings)
    assert state.reason == "Pending"


def test_with_discovery_no_node_with_the_accelerator_is_a_clear_condition() -> None:
    inventory = Inventory.from_nodes([_node("cpu-1", None), _node("npu-1", 992, "intel-npu")])
    with_settings = settings(nodeDiscovery=True)
    rendered = _rendered(_gpu(), with_settings, inventory=inventory)
    assert rendered.resolution.undiscovered == ("intel-gpu",)
    state = device_access_state(rendered, None, True, with_settings)
    assert (state.status, state.reason) == ("False", "DeviceMissing")
    assert "no node the pods may land on reports intel-gpu" in state.message
    assert "kubevino.io/accelerator-intel-gpu=true" in state.message
    # Not refused: the Deployment is applied and waits for a node to come.
    assert any(obj["kind"] == "Deployment" for obj in rendered.objects)


def test_without_discovery_node_reports_change_nothing() -> None:
    inventory = Inventory.from_nodes([_node("ubuntu-1", 110, "intel-gpu")])
    with_settings = settings(renderGroupId=44)
    rendered = _rendered(_gpu(), with_settings, inventory=inventory)
    assert rendered.resolution.groups == (44,) and rendered.resolution.undiscovered == ()
