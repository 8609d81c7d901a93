"""Pure: the ``DeviceAccess`` condition — can the model's pods use the devices they were given?

Read from what the operator decided (a refusal, what node discovery found) and from what the
server said when its device check stopped it (``DeviceAccess=<Reason>: …`` in the termination
message). The message always ends with the change that fixes it, in the user's terms: a setting,
an access mode, a GID for a node, a driver.
"""

from __future__ import annotations

import re

from kubevino_operator.conditions import ConditionState
from kubevino_operator.discovery import DISCOVERED_LABEL, accelerator_label
from kubevino_operator.podhealth import PodProblem
from kubevino_operator.profiles import PROFILES, AcceleratorProfile
from kubevino_operator.render import Rendered
from kubevino_operator.resolve import Refusal, Resolution, device_plugin_resource
from kubevino_operator.settings import Settings

DEVICE_ACCESS = "DeviceAccess"
# Refusals that are about reaching devices, and the DeviceAccess reason each becomes.
_REFUSAL_REASONS = {
    "PrivilegeNotAllowed": "NotAllowed",
    "AccessModeUnsupported": "NotAllowed",
    "RenderGroupUnknown": "GroupMissing",
}
_GROUP_IN_MESSAGE = re.compile(r"\(group (\d+), mode")


def _device_profiles(resolution: Resolution) -> list[AcceleratorProfile]:
    return [claim.profile for claim in resolution.device_claims]


def _plugin_or_privilege(profile: AcceleratorProfile, settings: Settings) -> str:
    if profile.device_plugin is None:
        return "set spec.device.accessMode: HostDevices and allowPrivileged: true in the settings"
    resource = device_plugin_resource(profile, settings)
    return (
        f"install the device plugin that advertises {resource} (spec.device.accessMode: "
        f"DevicePlugin) or set allowPrivileged: true in the operator settings (HostDevices)"
    )


def _fix(problem: PodProblem, resolution: Resolution, settings: Settings) -> str:
    profiles = _device_profiles(resolution)
    names = ", ".join(p.name for p in profiles) or "the accelerator"
    node = f"node {problem.node}" if problem.node else "the node"
    if problem.reason == "GroupMissing":
        found = _GROUP_IN_MESSAGE.search(problem.message)
        gid = found.group(1) if found else "the device's group"
        groups = ", ".join(str(g) for g in resolution.groups) or "none"
        return (
            f"on {node} the device belongs to GID {gid} but the pods get supplementalGroups "
            f"[{groups}]: set renderGroupId: {gid} (or a renderGroupIdsByPool entry for that "
            f"node pool) in the operator settings, or turn on nodeDiscovery with the node agent "
            f"so each node's GID is used"
        )
    if problem.reason == "CgroupDenied":
        if resolution.access_mode == "DevicePlugin":
            resources = ", ".join(device_plugin_resource(p, settings) for p in profiles)
            return (
                f"the device plugin for {resources} on {node} handed the pod its device node "
                f"without a device-cgroup grant: fix the plugin (it must return the node as a "
                f"DeviceSpec), or set spec.device.accessMode: HostDevices with allowPrivileged: "
                f"true in the operator settings"
            )
        return "; ".join(_plugin_or_privilege(p, settings) for p in profiles)
    if problem.reason == "DeviceMissing":
        if resolution.access_mode == "HostDevices":
            return (
                f"{node} has no such device node under deviceRoot {settings.device_root}: "
                f"steer the pods to nodes with {names} (nodeSelector, or nodeDiscovery) or fix "
                f"deviceRoot in the operator settings"
            )
        return (
            f"the device plugin on {node} did not hand the pod a {names} device node: check "
            f"the plugin, or run the pods where {names} exists"
        )
    drivers = "; ".join(f"{p.name}: {p.driver}" for p in profiles if p.driver)
    return (
        f"load the driver on {node} ({drivers or 'the device driver'}) and serve with an image "
        f"that has the user-space driver (image now: {resolution.image})"
    )


def _undiscovered(resolution: Resolution, settings: Settings) -> ConditionState:
    missing = resolution.undiscovered
    labels = ", ".join(f"{accelerator_label(name)}=true" for name in missing)
    return ConditionState(
        "False",
        "DeviceMissing",
        f"no node the pods may land on reports {', '.join(missing)} (the node agent labels "
        f"such nodes {labels}; nodes it reported on carry {DISCOVERED_LABEL}=true): run the "
        f"node agent on the accelerator nodes (chart value nodeAgent.enabled), check that the "
        f"device exists there, or widen spec.serving.nodeSelector",
    )


def device_access_state(
    rendered: Rendered | Refusal | None,
    pod_problem: PodProblem | None,
    serving: bool,
    settings: Settings,
) -> ConditionState:
    """DeviceAccess for one reconcile: ``serving`` is whether Ready would be True."""
    if rendered is None:
        return ConditionState("Unknown", "InvalidSpec", "the spec is invalid: see Ready")
    if isinstance(rendered, Refusal):
        reason = _REFUSAL_REASONS.get(rendered.reason)
        if reason is None:
            return ConditionState("Unknown", "NotRendered", "the spec is refused: see Ready")
        return ConditionState("False", reason, rendered.message)
    resolution = rendered.resolution
    if not resolution.device_claims:
        return ConditionState("True", "NoDeviceNeeded", "the target runs on CPU: no device")
    if resolution.undiscovered:
        return _undiscovered(resolution, settings)
    if pod_problem is not None and pod_problem.condition == DEVICE_ACCESS:
        fix = _fix(pod_problem, resolution, settings)
        return ConditionState("False", pod_problem.reason, f"{pod_problem.message} Fix: {fix}.")
    names = ", ".join(PROFILES[name].name for name in resolution.accelerators if name != "cpu")
    if serving:
        return ConditionState(
            "True", "DevicesUsable", f"the serving pods opened their {names} device nodes"
        )
    return ConditionState(
        "Unknown", "Pending", f"waiting for a pod to start and check its {names} device nodes"
    )
