"""From a spec and the settings to the decisions a pod is built from — or a refusal.

A refusal is not an error of the program: it is the answer "this cannot run as asked here", with
a stable CamelCase reason and a message that says what to change. The operator shows it as a
condition and an Event; ``kubevino render`` prints it and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kubevino_common.devices import Target, parse_target
from kubevino_operator.api import AcceleratorName, AccessMode, InferenceModel
from kubevino_operator.discovery import DISCOVERABLE, DraFacts, Inventory
from kubevino_operator.profiles import (
    DEFAULT_PROFILE_FOR_FAMILY,
    PROFILES,
    AcceleratorProfile,
    ImageVariant,
    profiles_for_family,
)
from kubevino_operator.settings import Settings

Runtime = Literal["Kubevino", "ModelServer"]
_VARIANT_ORDER: tuple[ImageVariant, ...] = ("cpu", "gpu", "cuda")


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


class RefusedError(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.reason}: {refusal.message}")
        self.refusal = refusal


@dataclass(frozen=True)
class Claim:
    """One accelerator the pod needs, and how many of its devices."""

    profile: AcceleratorProfile
    count: int


@dataclass(frozen=True)
class DraShortfall:
    """A ResourceClaim-mode accelerator whose DeviceClass's driver publishes no device in any
    ResourceSlice: the scheduler cannot allocate it anywhere."""

    accelerator: AcceleratorName
    device_class: str
    driver: str
    driver_has_slices: bool  # the driver runs somewhere, publishing no device


@dataclass(frozen=True)
class Resolution:
    target: Target
    claims: tuple[Claim, ...]
    access_mode: AccessMode
    runtime: Runtime
    image: str
    groups: tuple[int, ...]
    privileged: bool
    # With node discovery: accelerators no reported node has (where the pod may land).
    undiscovered: tuple[AcceleratorName, ...] = ()
    # ResourceClaim mode: accelerators no ResourceSlice publishes a device of.
    dra_shortfalls: tuple[DraShortfall, ...] = ()

    @property
    def accelerators(self) -> tuple[AcceleratorName, ...]:
        return tuple(claim.profile.name for claim in self.claims)

    @property
    def device_claims(self) -> tuple[Claim, ...]:
        return tuple(claim for claim in self.claims if claim.profile.needs_device_access())


def _refuse(reason: str, message: str) -> RefusedError:
    return RefusedError(Refusal(reason, message))


def _open_auto_profiles(
    target: Target, listed: list[AcceleratorName] | None, settings: Settings
) -> list[AcceleratorProfile]:
    names = listed or settings.default_accelerators
    chosen = [PROFILES[name] for name in names]
    kept = [p for p in chosen if not set(p.families) & target.exclusions]
    if not kept:
        raise _refuse(
            "NoAccelerator",
            f"{target} leaves no accelerator to run on: it excludes "
            f"{', '.join(sorted(target.exclusions))} and the accelerators in use are "
            f"{', '.join(names)}; list others in spec.device.accelerators",
        )
    return kept


def _named_profiles(
    target: Target, listed: list[AcceleratorName] | None
) -> list[AcceleratorProfile]:
    listed_set = set(listed or ())
    chosen: list[AcceleratorProfile] = []
    for family in target.families():
        serving = profiles_for_family(family)
        if not serving:
            known = ", ".join(sorted(DEFAULT_PROFILE_FOR_FAMILY))
            raise _refuse(
                "UnknownDevice",
                f"no accelerator profile serves OpenVINO device {family} (target {target}); "
                f"kubevino knows {known}",
            )
        picked = [p for p in serving if p.name in listed_set]
        if len(picked) > 1:
            raise _refuse(
                "AmbiguousAccelerator",
                f"spec.device.accelerators lists {', '.join(p.name for p in picked)}, which all "
                f"serve {family}; keep one",
            )
        chosen.append(picked[0] if picked else PROFILES[DEFAULT_PROFILE_FOR_FAMILY[family]])
    unused = listed_set - {p.name for p in chosen}
    if unused:
        raise _refuse(
            "UnusedAccelerator",
            f"spec.device.accelerators lists {', '.join(sorted(unused))}, which target "
            f"{target} does not use; remove it or add its device to the target",
        )
    return chosen


def _device_count(target: Target, profile: AcceleratorProfile, asked: int | None) -> int:
    if asked is not None:
        return asked
    needed = 1
    for family in profile.families:
        instances = target.instances(family)
        needed = max(needed, len(instances))
        # GPU.1 is the second GPU the process sees: two must be visible.
        needed = max(needed, *(int(i) + 1 for i in instances if i.isdigit()), 1)
    return needed


def _runtime(model: InferenceModel, profiles: list[AcceleratorProfile]) -> Runtime:
    needs_model_server = [p.name for p in profiles if p.runtime == "ModelServer"]
    asked = model.spec.serving.runtime
    if model.spec.model.task != "Tensor" and needs_model_server:
        # Admission refuses such targets; a bare AUTO still reaches them through the
        # accelerators listed here or in the operator settings.
        raise _refuse(
            "GenerativeDeviceUnsupported",
            f"{', '.join(needs_model_server)} cannot run {model.spec.model.task}: its devices "
            "have no OpenVINO GenAI plugin (only Model Server 2022.3 drives them, without "
            "generative tasks); list other accelerators in spec.device.accelerators",
        )
    if asked == "Kubevino" and needs_model_server:
        raise _refuse(
            "RuntimeUnsupported",
            f"{', '.join(needs_model_server)} cannot run on the kubevino runtime (current "
            "OpenVINO has no plugin for it): set serving.runtime to ModelServer or Auto",
        )
    if asked == "ModelServer" or needs_model_server:
        own = [
            field
            for field, value in (
                ("serving.workers", model.spec.serving.workers),
                (
                    "performance.dynamicBatching",
                    model.spec.performance.dynamic_batching if model.spec.performance else None,
                ),
            )
            if value is not None
        ]
        if own:
            named = " and ".join(own)
            verb = (
                "are kubevino runtime settings" if len(own) > 1 else "is a kubevino runtime setting"
            )
            raise _refuse(
                "RuntimeUnsupported",
                f"{named} {verb}, but this model runs on the ModelServer runtime: remove {named}",
            )
        return "ModelServer"
    return "Kubevino"


def _image(
    model: InferenceModel, runtime: Runtime, profiles: list[AcceleratorProfile], settings: Settings
) -> str:
    if model.spec.serving.image:
        return model.spec.serving.image
    variant = max((p.image_variant for p in profiles), key=_VARIANT_ORDER.index, default="cpu")
    if runtime == "Kubevino":
        if variant == "cuda":
            raise _refuse("RuntimeUnsupported", "NVIDIA targets need the ModelServer runtime")
        return settings.runtime_gpu_image if variant == "gpu" else settings.runtime_image
    if model.spec.model.task != "Tensor":
        # The 2022.3 images have no generative tasks; the generative ones no MYRIAD or HDDL,
        # which generative models never target (refused above).
        return (
            settings.model_server_generative_gpu_image
            if variant == "gpu"
            else settings.model_server_generative_image
        )
    return {
        "cpu": settings.model_server_image,
        "gpu": settings.model_server_gpu_image,
        "cuda": settings.model_server_cuda_image,
    }[variant]


def _check_access(profile: AcceleratorProfile, mode: AccessMode, settings: Settings) -> bool:
    """Whether this profile makes the container privileged in this mode (or refuse)."""
    if mode == "ResourceClaim":
        if profile.dra is None:
            other = "DevicePlugin" if profile.device_plugin is not None else "HostDevices"
            raise _refuse(
                "AccessModeUnsupported",
                f"{profile.name} has no Dynamic Resource Allocation route ({profile.no_dra}); "
                f"set spec.device.accessMode to {other}",
            )
        return False
    if mode == "DevicePlugin":
        if profile.device_plugin is None:
            raise _refuse(
                "AccessModeUnsupported",
                f"{profile.name} has no device plugin route; set spec.device.accessMode to "
                "HostDevices (and allowPrivileged in the operator settings)",
            )
        return False
    if profile.host_devices is None:
        plugin = profile.device_plugin.resource if profile.device_plugin else "a device plugin"
        raise _refuse(
            "AccessModeUnsupported",
            f"{profile.name} is reachable only through its device plugin ({plugin}); set "
            "spec.device.accessMode to DevicePlugin",
        )
    if not settings.allow_privileged:
        rules = ", ".join(f"'{rule}'" for rule in profile.host_devices.cgroup_rules)
        plugin = ""
        if profile.device_plugin is not None:
            resource = device_plugin_resource(profile, settings)
            plugin = (
                f"install the device plugin that advertises {resource} and set "
                "spec.device.accessMode to DevicePlugin, or "
            )
        raise _refuse(
            "PrivilegeNotAllowed",
            f"{profile.name} with HostDevices needs a privileged container (Kubernetes has no "
            f"--device-cgroup-rule; docker would grant {rules}): {plugin}set allowPrivileged: "
            "true in the operator settings",
        )
    return True


def _check_dra(
    model: InferenceModel,
    profiles: list[AcceleratorProfile],
    settings: Settings,
    facts: DraFacts,
) -> None:
    if not any(profile.dra is not None for profile in profiles):
        return  # nothing to claim (a CPU model)
    if not facts.served:
        raise _refuse(
            "ResourceClaimUnsupported",
            "this cluster does not serve resource.k8s.io/v1 (Dynamic Resource Allocation, GA "
            "in Kubernetes 1.34): upgrade the cluster or set spec.device.accessMode to "
            "DevicePlugin",
        )
    asked = model.spec.device.resource_claim
    if asked is not None and asked.user_managed:
        return  # the user's claim names its own classes
    for profile in profiles:
        if profile.dra is None:
            continue
        wanted = (asked.device_class_name if asked else None) or dra_device_class(profile, settings)
        if wanted not in facts.device_classes:
            have = ", ".join(sorted(facts.device_classes)) or "none"
            raise _refuse(
                "DeviceClassMissing",
                f"DeviceClass {wanted} for {profile.name} does not exist (the cluster has "
                f"{have}): install its DRA driver (Intel's GPU driver installs gpu.intel.com), "
                "or name an existing class in spec.device.resourceClaim.deviceClassName or the "
                "operator settings' draDeviceClasses",
            )


def _dra_shortfalls(
    model: InferenceModel,
    profiles: list[AcceleratorProfile],
    settings: Settings,
    facts: DraFacts,
) -> tuple[DraShortfall, ...]:
    """What the drivers' ResourceSlices (the scheduler's own truth) lack for this model: per
    accelerator, whether any slice of its class's driver publishes a device. A class whose
    selectors do not name its driver plainly, and a claim the user manages, are left to the
    scheduler."""
    asked = model.spec.device.resource_claim
    if not facts.served or (asked is not None and asked.user_managed):
        return ()
    shortfalls = []
    for profile in profiles:
        if profile.dra is None:
            continue
        device_class = (asked.device_class_name if asked else None) or dra_device_class(
            profile, settings
        )
        driver = facts.driver_of(device_class)
        if driver is not None and not facts.nodes_publishing(driver):
            shortfalls.append(
                DraShortfall(
                    profile.name, device_class, driver, driver in facts.drivers_with_slices
                )
            )
    return tuple(shortfalls)


def dra_device_class(profile: AcceleratorProfile, settings: Settings) -> str:
    """The DeviceClass a ResourceClaim-mode pod allocates this profile's devices from."""
    override = settings.dra_device_classes.get(profile.name)
    if override:
        return override
    assert profile.dra is not None
    return profile.dra.device_class


def device_plugin_resource(profile: AcceleratorProfile, settings: Settings) -> str:
    """The extended resource a DevicePlugin pod requests for this profile."""
    override = settings.device_plugin_resources.get(profile.name)
    if override:
        return override
    assert profile.device_plugin is not None
    return profile.device_plugin.resource


def _discovered_render_gids(
    model: InferenceModel, profiles: list[AcceleratorProfile], inventory: Inventory
) -> set[int]:
    """Render GIDs of every node a pod may land on (any of them may get the pod)."""
    selector = model.spec.serving.node_selector or {}
    return {
        gid
        for profile in profiles
        if "render" in profile.groups
        for node in inventory.nodes_with(profile.name, selector)
        for gid in node.render_gids
    }


def _undiscovered(
    model: InferenceModel, profiles: list[AcceleratorProfile], inventory: Inventory
) -> tuple[AcceleratorName, ...]:
    selector = model.spec.serving.node_selector or {}
    return tuple(
        profile.name
        for profile in profiles
        if profile.name in DISCOVERABLE and not inventory.nodes_with(profile.name, selector)
    )


def _configured_render_gids(settings: Settings) -> set[int]:
    """Every render GID the settings name (per pool and cluster-wide)."""
    gids = {pool.gid for pool in settings.render_group_ids_by_pool}
    if settings.render_group_id is not None:
        gids.add(settings.render_group_id)
    return gids


def _render_gids(
    model: InferenceModel,
    profiles: list[AcceleratorProfile],
    settings: Settings,
    inventory: Inventory | None,
) -> set[int]:
    if settings.node_discovery:
        # Until a node reports the accelerator (the condition says so), the settings' GIDs
        # stand in; no refusal, since a node may come.
        discovered = (
            _discovered_render_gids(model, profiles, inventory) if inventory is not None else set()
        )
        return discovered or _configured_render_gids(settings)
    wanted = model.spec.serving.node_selector or {}
    pools = settings.render_group_ids_by_pool
    matching = {p.gid for p in pools if p.node_selector.items() <= wanted.items()}
    if matching:
        return matching
    everywhere = _configured_render_gids(settings)
    if not everywhere:
        users = ", ".join(p.name for p in profiles if "render" in p.groups)
        raise _refuse(
            "RenderGroupUnknown",
            f"{users} need the node's render group, and the operator settings name "
            "none: set renderGroupId (run `stat -c %g /dev/dri/renderD128` on a GPU "
            "node; it differs between distros) or renderGroupIdsByPool",
        )
    return everywhere


def _groups(
    model: InferenceModel,
    profiles: list[AcceleratorProfile],
    settings: Settings,
    inventory: Inventory | None,
) -> tuple[int, ...]:
    roles = {role for profile in profiles for role in profile.groups}
    if (model.spec.device.access_mode or settings.default_access_mode) == "ResourceClaim":
        # CDI device nodes are handed to the container's own uid/gid: no group to add.
        roles.discard("render")
    gids: set[int] = set()
    if "usb" in roles:
        gids.add(settings.usb_group_id)
    if "render" in roles:
        gids |= _render_gids(model, profiles, settings, inventory)
    return tuple(sorted(gids))


def resolve(
    model: InferenceModel, settings: Settings, inventory: Inventory | None = None
) -> Resolution:
    """Decide accelerators, counts, access, runtime, image, groups; raise RefusedError.

    ``inventory``: what the node agent reported, used when ``settings.node_discovery`` is on.
    """
    device = model.spec.device
    target = parse_target(device.target_device)
    if target.is_open_auto:
        profiles = _open_auto_profiles(target, device.accelerators, settings)
    else:
        profiles = _named_profiles(target, device.accelerators)
    mode: AccessMode = device.access_mode or settings.default_access_mode
    if device.resource_claim is not None and mode != "ResourceClaim":
        raise _refuse(
            "AccessModeUnsupported",
            f"spec.device.resourceClaim needs accessMode ResourceClaim, and this model gets "
            f"{mode} from the operator settings: set spec.device.accessMode: ResourceClaim",
        )
    privileged = False
    for profile in profiles:
        if profile.needs_device_access():
            privileged = _check_access(profile, mode, settings) or privileged
    if mode == "ResourceClaim" and inventory is not None and inventory.dra is not None:
        _check_dra(model, profiles, settings, inventory.dra)
    runtime = _runtime(model, profiles)
    claims = tuple(
        Claim(profile, _device_count(target, profile, device.count)) for profile in profiles
    )
    device_profiles = [c.profile for c in claims if c.profile.needs_device_access()]
    dra = inventory.dra if inventory is not None and mode == "ResourceClaim" else None
    # Where the drivers' ResourceSlices are read, they say where devices are, not the labels.
    labelled = [p for p in device_profiles if dra is None or p.dra is None]
    return Resolution(
        target=target,
        claims=claims,
        access_mode=mode,
        runtime=runtime,
        image=_image(model, runtime, profiles, settings),
        groups=_groups(model, profiles, settings, inventory),
        privileged=privileged,
        undiscovered=(
            _undiscovered(model, labelled, inventory or Inventory())
            if settings.node_discovery
            else ()
        ),
        dra_shortfalls=(
            _dra_shortfalls(model, device_profiles, settings, dra) if dra is not None else ()
        ),
    )
