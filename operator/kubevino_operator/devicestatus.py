"""Pure: the ``DeviceAccess`` condition — can the model's pods use the devices they were given?

Read from what the operator decided (a refusal, what node discovery found) and from what the
server said when its device check stopped it (``DeviceAccess=<Reason>: …`` in the termination
message). The message always ends with the change that fixes it, in the user's terms: a setting,
an access mode, a GID for a node, a driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kubevino_operator.claimhealth import (
    CDI_INJECTION_FAILED,
    CLAIM_REASONS,
    DEVICE_CLASS_MISSING,
    DEVICE_SELECTOR_FAILED,
    DRA_DRIVER_NOT_RUNNING,
    NO_MATCHING_DEVICE,
    devices_of_pod,
)
from kubevino_operator.conditions import ConditionState
from kubevino_operator.discovery import DISCOVERED_LABEL, accelerator_label
from kubevino_operator.podhealth import PodProblem
from kubevino_operator.profiles import PROFILES, AcceleratorProfile
from kubevino_operator.render import Rendered
from kubevino_operator.resolve import (
    Refusal,
    Resolution,
    device_plugin_resource,
    dra_device_class,
)
from kubevino_operator.settings import Settings

DEVICE_ACCESS = "DeviceAccess"
# Refusals that are about reaching devices, and the DeviceAccess reason each becomes.
_REFUSAL_REASONS = {
    "PrivilegeNotAllowed": "NotAllowed",
    "AccessModeUnsupported": "NotAllowed",
    "RenderGroupUnknown": "GroupMissing",
    "DeviceClassMissing": DEVICE_CLASS_MISSING,
    "ResourceClaimUnsupported": "ResourceClaimUnsupported",
}
NAMED_DEVICES = 4
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


def _claim_request(rendered: Rendered, settings: Settings) -> tuple[str, str]:
    """The DeviceClass(es) a model's claim asks for, and how its request narrows them."""
    asked = rendered.model.spec.device.resource_claim
    if asked is not None and asked.user_managed:
        own = asked.claim_name or asked.claim_template_name
        kind = "ResourceClaim" if asked.claim_name else "ResourceClaimTemplate"
        return f"the DeviceClass your {kind} {own} names", ""
    classes = sorted(
        {
            (asked.device_class_name if asked else None) or dra_device_class(p, settings)
            for p in _device_profiles(rendered.resolution)
            if p.dra is not None
        }
    )
    narrowing = []
    if asked is not None and asked.selectors:
        narrowing.append("selectors " + "; ".join(asked.selectors))
    if asked is not None and asked.min_memory is not None:
        narrowing.append(f"minMemory {asked.min_memory}")
    return f"DeviceClass {', '.join(classes)}", ", ".join(narrowing)


def _claim_fix(problem: PodProblem, rendered: Rendered, settings: Settings) -> str:
    """The fix for a claim that gives the pod no device (claimhealth's reasons)."""
    node = f"node {problem.node}" if problem.node else "the node"
    wanted, narrowing = _claim_request(rendered, settings)
    if problem.reason == NO_MATCHING_DEVICE:
        asked = f" with {narrowing}" if narrowing else ""
        return (
            f"no free device of {wanted}{asked} is published in any ResourceSlice: loosen "
            f"spec.device.resourceClaim (selectors, minMemory; `kubectl get resourceslices "
            f"-o yaml` lists each device's attributes and capacity), or free or add a device"
        )
    if problem.reason == DEVICE_SELECTOR_FAILED:
        asked = f" ({narrowing})" if narrowing else ""
        return (
            f"a selector of the claim on {wanted}{asked} fails on a published device "
            f"({problem.subject or 'CEL runtime error'}): it names an attribute or capacity "
            f"that device does not publish: select only what every device of the class "
            f"publishes (`kubectl get resourceslices -o yaml` lists them)"
        )
    if problem.reason == DEVICE_CLASS_MISSING:
        gone = f"DeviceClass {problem.subject}" if problem.subject else wanted
        return (
            f"{gone} does not exist: install the DRA driver that provides it (Intel's GPU "
            f"driver installs gpu.intel.com), or name an existing class in "
            f"spec.device.resourceClaim.deviceClassName or the operator settings' "
            f"draDeviceClasses"
        )
    driver = f"DRA driver {problem.subject}" if problem.subject else f"DRA driver of {wanted}"
    if problem.reason == DRA_DRIVER_NOT_RUNNING:
        return (
            f"start the {driver} on {node} (its kubelet plugin registers under the kubelet's "
            f"plugins_registry directory; Intel's GPU driver runs as a DaemonSet): the kubelet "
            f"prepares the claim once it is registered"
        )
    if problem.reason == CDI_INJECTION_FAILED:
        return (
            f"the container runtime on {node} found no CDI spec for the device the "
            f"{driver} handed over: check that the driver writes its CDI specs (/etc/cdi or "
            f"/var/run/cdi) and that the runtime reads that directory (containerd 2: "
            f"cdi_spec_dirs; containerd 1.7: enable_cdi = true)"
        )
    return f"the {driver} on {node} did not prepare the claim: read its logs"


def _dra_fix(problem: PodProblem, settings: Settings, rendered: Rendered) -> str:
    """The fix for what the device check in a ResourceClaim-mode pod said: the CDI spec of
    the device the DRA driver handed over decides the node's path, grant and owner."""
    node = f"node {problem.node}" if problem.node else "the node"
    wanted, _ = _claim_request(rendered, settings)
    if problem.reason == "GroupMissing":
        return (
            f"the CDI spec the DRA driver of {wanted} wrote on {node} gives the device node "
            f"a fixed group the pod is not in: let the driver leave the node's uid and gid "
            f"unset (the runtime then gives it the pod's own) or add the group as "
            f"additionalGids in its CDI spec"
        )
    if problem.reason == "CgroupDenied":
        return (
            f"the container runtime on {node} gave the pod the device node without a device "
            f"cgroup grant: its CDI spec must name the node under deviceNodes (not as a mount)"
        )
    if problem.reason == "DeviceMissing":
        return (
            f"the CDI spec the DRA driver of {wanted} wrote on {node} puts no device node "
            f"where the runtime looks (/dev/dri for a GPU): check the driver's CDI spec"
        )
    return _fix(problem, rendered.resolution, settings)


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


def _unpublished(resolution: Resolution) -> ConditionState:
    """ResourceClaim mode, and no ResourceSlice publishes a device of the class's driver."""
    gone = [s for s in resolution.dra_shortfalls if not s.driver_has_slices]
    if gone:
        drivers = ", ".join(f"{s.driver} (DeviceClass {s.device_class})" for s in gone)
        return ConditionState(
            "False",
            DRA_DRIVER_NOT_RUNNING,
            f"no node publishes a ResourceSlice of DRA driver {drivers}, so the scheduler has "
            f"no device to allocate: the driver runs on no node (the kubelet removes a "
            f"driver's slices about 30 s after it stops). Fix: install or start the DRA "
            f"driver on the accelerator nodes",
        )
    empty = ", ".join(
        f"{s.driver} (DeviceClass {s.device_class})" for s in resolution.dra_shortfalls
    )
    return ConditionState(
        "False",
        "DeviceMissing",
        f"the ResourceSlices of DRA driver {empty} publish no device on any node. Fix: check "
        f"that the accelerator nodes have the device and its kernel driver loaded (the DRA "
        f"driver publishes what it finds)",
    )


def device_access_state(
    rendered: Rendered | Refusal | None,
    pod_problem: PodProblem | None,
    serving: bool,
    settings: Settings,
    devices: Sequence[Mapping[str, str]] = (),
) -> ConditionState:
    """DeviceAccess for one reconcile: ``serving`` is whether Ready would be True;
    ``devices``: what the model's ResourceClaims were allocated (status.devices)."""
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
    if resolution.dra_shortfalls:
        return _unpublished(resolution)
    if pod_problem is not None and pod_problem.condition == DEVICE_ACCESS:
        if pod_problem.reason in CLAIM_REASONS:
            fix = _claim_fix(pod_problem, rendered, settings)
        elif resolution.access_mode == "ResourceClaim":
            fix = _dra_fix(pod_problem, settings, rendered)
        else:
            fix = _fix(pod_problem, resolution, settings)
        allocated = devices_of_pod(devices, pod_problem.pod)
        given = f" Its claim was allocated {allocated}." if allocated else ""
        return ConditionState(
            "False", pod_problem.reason, f"{pod_problem.message}{given} Fix: {fix}."
        )
    names = ", ".join(PROFILES[name].name for name in resolution.accelerators if name != "cpu")
    if serving:
        named = sorted({f"{d['driver']} device {d['pool']}/{d['device']}" for d in devices})
        # A large model's every device is in status.devices; the message names a few.
        more = f" and {len(named) - NAMED_DEVICES} more" if len(named) > NAMED_DEVICES else ""
        allocated = ", ".join(named[:NAMED_DEVICES]) + more
        claimed = f" (allocated {allocated})" if named else ""
        return ConditionState(
            "True", "DevicesUsable", f"the serving pods opened their {names} device nodes{claimed}"
        )
    return ConditionState(
        "Unknown", "Pending", f"waiting for a pod to start and check its {names} device nodes"
    )
