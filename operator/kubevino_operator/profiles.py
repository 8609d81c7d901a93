"""One table of accelerator profiles: everything kubevino knows about reaching a device.

Each entry is the Kubernetes form of a docker recipe from OpenVINO Model Server's accelerator
guide (named in the entry's comment). ``render`` composes entries; no other module holds device
knowledge.

Two ways to reach a device:

* ``DevicePlugin`` — the pod requests the plugin's extended resource; the kubelet adds the device
  nodes and their cgroup grant. No privilege needed; the process still needs the owning group.
* ``HostDevices`` — the pod mounts the node's device nodes. Kubernetes has no equivalent of
  ``docker --device`` or ``--device-cgroup-rule``, so the container must be privileged for the
  device cgroup to let it open them. ``cgroup_rules`` records what docker would have granted, so
  the README and diagnostics can say exactly which access the privilege stands in for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from kubevino_operator.api import AcceleratorName, AccessMode, PodSecurityLevel

HostPathType = Literal["CharDevice", "Directory"]
GroupRole = Literal["render", "usb"]
ImageVariant = Literal["cpu", "gpu", "cuda"]
RuntimeNeed = Literal["any", "ModelServer"]


@dataclass(frozen=True)
class HostDevice:
    """A device node (or a directory of them) under the node's device root."""

    relative_path: str  # below settings.device_root, e.g. "dri"
    host_path_type: HostPathType

    def container_path(self) -> str:
        return f"/dev/{self.relative_path}"


@dataclass(frozen=True)
class CgroupRule:
    """A device cgroup permission, as docker's --device-cgroup-rule writes it."""

    device_type: Literal["c", "b"]
    major: int
    minor: int | None  # None: every minor
    access: str = "rwm"

    def __str__(self) -> str:
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.device_type} {self.major}:{minor} {self.access}"


@dataclass(frozen=True)
class HostVolume:
    """A host directory the container needs besides device nodes."""

    name: str
    setting: Literal["wsl_library_path", "hddl_socket_dir"]  # Settings field with the host path
    read_only: bool


@dataclass(frozen=True)
class DevicePluginAccess:
    resource: str  # extended resource name the plugin advertises
    host_volumes: tuple[HostVolume, ...] = ()  # what the plugin does not hand over itself


@dataclass(frozen=True)
class HostDeviceAccess:
    devices: tuple[HostDevice, ...]
    cgroup_rules: tuple[CgroupRule, ...]
    host_volumes: tuple[HostVolume, ...] = ()


@dataclass(frozen=True)
class DraAccess:
    """Dynamic Resource Allocation through a driver's DeviceClass."""

    device_class: str  # the DeviceClass its driver installs
    driver: str  # the driver's name: the domain of its attributes and capacities in CEL


@dataclass(frozen=True)
class AcceleratorProfile:
    name: AcceleratorName
    families: tuple[str, ...]  # OpenVINO device families it serves
    recipe: str  # the docker recipe it implements, in one line
    device_plugin: DevicePluginAccess | None
    host_devices: HostDeviceAccess | None
    dra: DraAccess | None = None
    # Why there is no DRA route, for the refusal (when ``dra`` is None).
    no_dra: str = "no DRA driver is known for it"
    groups: tuple[GroupRole, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    image_variant: ImageVariant = "cpu"
    runtime: RuntimeNeed = "any"
    node_selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    run_as_root: bool = False
    # Infer requests that keep one device busy, where a recipe measured it; a target spreading
    # requests over several devices gets the sum (see inferrequests.py). None: OpenVINO's own.
    requests_per_device: int | None = None
    # What must be loaded on the node for the device node to answer (for fix hints).
    driver: str = ""
    # The Pod Security Standard level the rendered pod needs in each mode; a mode the
    # profile cannot use is absent. A unit test checks each against the rendered pod.
    pod_security: Mapping[AccessMode, PodSecurityLevel] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def needs_device_access(self) -> bool:
        return (
            self.device_plugin is not None or self.host_devices is not None or self.dra is not None
        )


_WSL_LIBRARIES = HostVolume("wsl-libraries", "wsl_library_path", read_only=True)
_HDDL_SOCKETS = HostVolume("hddl-sockets", "hddl_socket_dir", read_only=False)
_RESTRICTED_OR_PRIVILEGED: Mapping[AccessMode, PodSecurityLevel] = MappingProxyType(
    {"DevicePlugin": "restricted", "HostDevices": "privileged"}
)
_ANY_MODE: Mapping[AccessMode, PodSecurityLevel] = MappingProxyType(
    {**_RESTRICTED_OR_PRIVILEGED, "ResourceClaim": "restricted"}
)

PROFILES: Mapping[AcceleratorName, AcceleratorProfile] = MappingProxyType(
    {
        # No recipe: the CPU plugin needs nothing from the host.
        "cpu": AcceleratorProfile(
            name="cpu",
            families=("CPU",),
            recipe="no device flags",
            device_plugin=None,
            host_devices=None,
            pod_security=MappingProxyType(
                {
                    "DevicePlugin": "restricted",
                    "HostDevices": "restricted",
                    "ResourceClaim": "restricted",
                }
            ),
        ),
        # Recipe "Intel GPU": --device=/dev/dri, --group-add=<render GID>, -u uid:gid, the -gpu
        # image. DRM devices are char major 226.
        "intel-gpu": AcceleratorProfile(
            name="intel-gpu",
            families=("GPU",),
            driver="the i915 or xe kernel driver",
            recipe="--device=/dev/dri --group-add=$(stat -c %g /dev/dri/render*) -u uid:gid",
            device_plugin=DevicePluginAccess(resource="gpu.intel.com/i915"),
            host_devices=HostDeviceAccess(
                devices=(HostDevice("dri", "Directory"),),
                cgroup_rules=(CgroupRule("c", 226, None),),
            ),
            # Intel's resource driver (intel-resource-drivers-for-kubernetes) hands the nodes
            # over as CDI devices; containerd gives them the container's uid/gid, so the render
            # group is not needed in this mode (observed on the node tier).
            dra=DraAccess(device_class="gpu.intel.com", driver="gpu.intel.com"),
            groups=("render",),
            image_variant="gpu",
            node_selector=MappingProxyType({"intel.feature.node.kubernetes.io/gpu": "true"}),
            pod_security=_ANY_MODE,
        ),
        # Recipe "GPU on WSL2": --device=/dev/dxg, -v /usr/lib/wsl:/usr/lib/wsl, render group.
        # /dev/dxg is a misc device (char major 10, dynamic minor). Intel's GPU plugin in WSL
        # mode mounts /dev/dxg and /usr/lib/wsl itself, so plugin mode needs no hostPath.
        "intel-gpu-wsl2": AcceleratorProfile(
            name="intel-gpu-wsl2",
            families=("GPU",),
            driver="WSL2's dxgkrnl driver and the Windows GPU driver",
            no_dra="Intel's GPU DRA driver drives i915/xe devices, not WSL2's /dev/dxg",
            recipe="--device=/dev/dxg --volume /usr/lib/wsl:/usr/lib/wsl --group-add=<render>",
            device_plugin=DevicePluginAccess(resource="gpu.intel.com/i915"),
            host_devices=HostDeviceAccess(
                devices=(HostDevice("dxg", "CharDevice"),),
                cgroup_rules=(CgroupRule("c", 10, None),),
                host_volumes=(_WSL_LIBRARIES,),
            ),
            groups=("render",),
            env=(("LD_LIBRARY_PATH", "/usr/lib/wsl/lib"),),
            image_variant="gpu",
            node_selector=MappingProxyType({"kubevino.io/wsl2-gpu": "true"}),
            pod_security=_RESTRICTED_OR_PRIVILEGED,
        ),
        # Not in the 2022 guide (the NPU plugin came later); the same shape as the GPU recipe:
        # /dev/accel/accel* (char major 261) owned by the render group, level-zero user space.
        "intel-npu": AcceleratorProfile(
            name="intel-npu",
            families=("NPU",),
            driver="the intel_vpu kernel driver (Linux 6.3 or later)",
            recipe="--device=/dev/accel --group-add=<render GID> (GPU recipe shape)",
            device_plugin=DevicePluginAccess(resource="npu.intel.com/accel"),
            no_dra="Intel ships no DRA driver for NPUs (its resource drivers only write NPU CDI "
            "specs)",
            host_devices=HostDeviceAccess(
                devices=(HostDevice("accel", "Directory"),),
                cgroup_rules=(CgroupRule("c", 261, None),),
            ),
            groups=("render",),
            image_variant="gpu",
            node_selector=MappingProxyType({"intel.feature.node.kubernetes.io/npu": "true"}),
            pod_security=_RESTRICTED_OR_PRIVILEGED,
        ),
        # Recipe "NCS2, secure": --device-cgroup-rule='c 189:* rmw' -v /dev/bus/usb:/dev/bus/usb.
        # Every USB minor, because the stick re-enumerates (03e7:2485 → 03e7:f63b) after the
        # firmware load. Recipe "NCS2, privileged": --privileged -v /dev:/dev. Both become one
        # privileged HostDevices pod mounting only /dev/bus/usb; the process stays non-root in
        # the group OpenVINO's udev rule gives the stick. Plugin mode: a generic USB device
        # plugin advertising the sticks (resource name is a setting).
        "ncs2": AcceleratorProfile(
            name="ncs2",
            families=("MYRIAD",),
            driver="the usbfs driver for the stick (any Linux kernel) and OpenVINO's udev rule",
            recipe="--device-cgroup-rule='c 189:* rmw' -v /dev/bus/usb:/dev/bus/usb",
            device_plugin=DevicePluginAccess(resource="squat.ai/ncs2"),
            host_devices=HostDeviceAccess(
                devices=(HostDevice("bus/usb", "Directory"),),
                cgroup_rules=(CgroupRule("c", 189, None),),
            ),
            groups=("usb",),
            # The multi-stick guide: four requests in flight saturate one stick.
            requests_per_device=4,
            runtime="ModelServer",
            node_selector=MappingProxyType({"kubevino.io/ncs2": "true"}),
            pod_security=_RESTRICTED_OR_PRIVILEGED,
        ),
        # Recipe "HDDL": --device=/dev/ion -v /var/tmp:/var/tmp, same user as hddldaemon (root).
        # /dev/ion is a misc device (char major 10). The daemon's sockets in /var/tmp need a
        # writable hostPath in either mode, so the pod is never better than privileged level.
        "hddl": AcceleratorProfile(
            name="hddl",
            families=("HDDL",),
            driver="the HDDL kernel drivers (myd_ion, myd_vsc) and hddldaemon",
            recipe="--device=/dev/ion:/dev/ion -v /var/tmp:/var/tmp --user root",
            device_plugin=DevicePluginAccess(
                resource="vpu.intel.com/hddl", host_volumes=(_HDDL_SOCKETS,)
            ),
            host_devices=HostDeviceAccess(
                devices=(HostDevice("ion", "CharDevice"),),
                cgroup_rules=(CgroupRule("c", 10, None),),
                host_volumes=(_HDDL_SOCKETS,),
            ),
            runtime="ModelServer",
            run_as_root=True,
            node_selector=MappingProxyType({"kubevino.io/hddl": "true"}),
            pod_security=MappingProxyType(
                {"DevicePlugin": "privileged", "HostDevices": "privileged"}
            ),
        ),
        # Recipe "NVIDIA": --gpus all with a Model Server image built with the NVIDIA plugin.
        # Kubernetes' equivalent of --gpus is the NVIDIA device plugin's resource; there is no
        # host-device route.
        "nvidia": AcceleratorProfile(
            name="nvidia",
            families=("NVIDIA",),
            driver="the NVIDIA kernel driver and container toolkit",
            recipe="--gpus all, image built with NVIDIA=1",
            device_plugin=DevicePluginAccess(resource="nvidia.com/gpu"),
            host_devices=None,
            image_variant="cuda",
            runtime="ModelServer",
            pod_security=MappingProxyType({"DevicePlugin": "restricted"}),
        ),
    }
)

# Which profile serves a device family when the InferenceModel does not pick a variant.
DEFAULT_PROFILE_FOR_FAMILY: Mapping[str, AcceleratorName] = MappingProxyType(
    {
        "CPU": "cpu",
        "GPU": "intel-gpu",
        "NPU": "intel-npu",
        "MYRIAD": "ncs2",
        "HDDL": "hddl",
        "NVIDIA": "nvidia",
    }
)


def profiles_for_family(family: str) -> tuple[AcceleratorProfile, ...]:
    return tuple(profile for profile in PROFILES.values() if family in profile.families)
