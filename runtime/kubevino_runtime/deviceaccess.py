"""Can this process use the devices its target needs? Asked once, before anything compiles.

The operator tells the runtime which device nodes it handed the pod for which OpenVINO device
family (``KUBEVINO_DEVICE_PATHS=GPU=/dev/dri,NPU=/dev/accel``). Each node is opened the way a
plugin would, and ``open()`` itself says what stands in the way:

* ENOENT, or a directory with no device node in it: the device is not there (not mounted, or
  the node has none) — ``DeviceMissing``;
* EACCES: the file mode lets the owning group in and this process is not in it —
  ``GroupMissing``;
* EPERM: the container's device cgroup does not grant the device (no device-plugin resource,
  not privileged) — ``CgroupDenied``;
* ENXIO / ENODEV: the grant is there but no kernel driver answers behind the node —
  ``DriverMissing``.

Then OpenVINO's own device list is compared with what the target needs: device nodes that open
while OpenVINO lists no such device mean the user-space driver or plugin is missing.

A node the pod was given but cannot open is a deployment mistake the operator can name, so it
always stops the server, whatever the target. A device OpenVINO does not list stops a target
that needs it; AUTO with a candidate list falls back to the candidates it can use, and says so.

Without ``KUBEVINO_DEVICE_PATHS`` (a container started by hand, ``docker run --device …`` as
Model Server's own recipes do) the server looks where the kernel puts each family's nodes
(``/dev/dri`` for GPU, ``/dev/dxg`` under WSL2, ``/dev/accel`` for NPU), for the families its
targets need, and reports the same classes; the fixes it suggests are then container flags.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kubevino_common.devices import Target, parse_target

DEVICE_PATHS_ENV = "KUBEVINO_DEVICE_PATHS"
# Families that need no device node.
NODELESS_FAMILIES = frozenset({"CPU"})
# Where each family's nodes are when nobody declares them: the kernel's names (DRM render and
# card nodes, the accel subsystem's NPU nodes).
STANDARD_DEVICE_PATHS: dict[str, str] = {"GPU": "/dev/dri", "NPU": "/dev/accel"}
# WSL2 has no DRM nodes: its GPU is the paravirtual /dev/dxg (with /usr/lib/wsl's libraries).
WSL_GPU_PATH = "/dev/dxg"


class Access(StrEnum):
    USABLE = "Usable"
    DEVICE_MISSING = "DeviceMissing"
    GROUP_MISSING = "GroupMissing"
    CGROUP_DENIED = "CgroupDenied"
    DRIVER_MISSING = "DriverMissing"


# Which failure explains a family best when none of its nodes opens: the first barrier a
# process meets (the cgroup, then the file mode, then the driver).
_PRECEDENCE = (
    Access.CGROUP_DENIED,
    Access.GROUP_MISSING,
    Access.DRIVER_MISSING,
    Access.DEVICE_MISSING,
)
_ERRNO_ACCESS = {
    errno.ENOENT: Access.DEVICE_MISSING,
    errno.EACCES: Access.GROUP_MISSING,
    errno.EPERM: Access.CGROUP_DENIED,
    errno.ENXIO: Access.DRIVER_MISSING,
    errno.ENODEV: Access.DRIVER_MISSING,
}


@dataclass(frozen=True)
class NodeProbe:
    """One device node (or a declared path with none) and what opening it said."""

    family: str
    path: str
    access: Access
    error: str | None = None  # errno name, e.g. "EACCES"
    owner_gid: int | None = None
    mode: int | None = None

    def describe(self, identity: Identity) -> str:
        if self.access is Access.USABLE:
            return f"{self.path} opens"
        if self.access is Access.DEVICE_MISSING:
            return (
                f"{self.path} does not exist in the container"
                if self.error == "ENOENT"
                else f"{self.path} holds no device node"
            )
        mode = f"{self.mode:04o}" if self.mode is not None else "?"
        if self.access is Access.GROUP_MISSING:
            return (
                f"{self.path} (group {self.owner_gid}, mode {mode}) cannot be opened by uid "
                f"{identity.uid} in groups {identity.groups_text()} (EACCES): the process is not "
                f"in group {self.owner_gid}"
            )
        if self.access is Access.CGROUP_DENIED:
            return (
                f"{self.path} is refused by the container's device cgroup (EPERM): the pod has "
                f"neither a device-plugin grant for it nor privilege"
            )
        return (
            f"{self.path} is granted but no kernel driver answers behind it ({self.error}): the "
            f"node's driver is not loaded or the device is gone"
        )


@dataclass(frozen=True)
class Identity:
    uid: int
    groups: tuple[int, ...]

    @classmethod
    def current(cls) -> Identity:
        return cls(os.getuid(), tuple(sorted({os.getgid(), *os.getgroups()})))

    def groups_text(self) -> str:
        return ",".join(str(gid) for gid in self.groups) or "none"


def parse_device_paths(text: str) -> dict[str, tuple[str, ...]]:
    """``GPU=/dev/dri,NPU=/dev/accel`` → ``{"GPU": ("/dev/dri",), "NPU": ("/dev/accel",)}``."""
    paths: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        family, separator, path = item.partition("=")
        if not separator or not family or not path.startswith("/"):
            raise ValueError(
                f"{DEVICE_PATHS_ENV}: {item!r} is not FAMILY=/absolute/path (e.g. GPU=/dev/dri)"
            )
        paths.setdefault(family.strip().upper(), []).append(path)
    return {family: tuple(found) for family, found in paths.items()}


def _open_result(path: str) -> tuple[Access, str | None]:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        access = _ERRNO_ACCESS.get(error.errno or 0, Access.DRIVER_MISSING)
        return access, errno.errorcode.get(error.errno or 0, str(error.errno))
    os.close(descriptor)
    return Access.USABLE, None


def _device_nodes(root: Path) -> list[Path]:
    if not root.is_dir():
        return [root]
    found = []
    for directory, _, files in os.walk(root):
        for name in sorted(files):
            candidate = Path(directory, name)
            try:
                if stat.S_ISCHR(candidate.stat().st_mode):
                    found.append(candidate)
            except OSError:
                continue
    return sorted(found)


def probe_path(family: str, path: str) -> list[NodeProbe]:
    """Open every character device at or below ``path``."""
    root = Path(path)
    if not root.exists():
        return [NodeProbe(family, path, Access.DEVICE_MISSING, "ENOENT")]
    nodes = _device_nodes(root)
    if not nodes:
        return [NodeProbe(family, path, Access.DEVICE_MISSING, "no device node")]
    probes = []
    for node in nodes:
        info = node.stat()
        access, error = _open_result(str(node))
        probes.append(
            NodeProbe(family, str(node), access, error, info.st_gid, stat.S_IMODE(info.st_mode))
        )
    return probes


def probe_all(device_paths: Mapping[str, Sequence[str]]) -> list[NodeProbe]:
    return [
        probe
        for family, paths in sorted(device_paths.items())
        for path in paths
        for probe in probe_path(family, path)
    ]


def family_access(probes: Iterable[NodeProbe]) -> Access | None:
    """Usable when any node opens; else the failure met first; None when nothing was probed."""
    found = {probe.access for probe in probes}
    if not found:
        return None
    if Access.USABLE in found:
        return Access.USABLE
    return next(access for access in _PRECEDENCE if access in found)


def _listed_by_openvino(family: str, available: Sequence[str]) -> bool:
    return any(name == family or name.startswith(f"{family}.") for name in available)


@dataclass(frozen=True)
class FamilyFinding:
    family: str
    access: Access  # Usable, or why not
    cause: str  # one sentence; empty when usable
    node_failure: bool  # a node the pod was given does not open (never excused by fallback)


@dataclass(frozen=True)
class TargetVerdict:
    """What one target can run on here, and whether the server may start with it."""

    target: str
    findings: tuple[FamilyFinding, ...]
    usable: tuple[str, ...]  # families the target may run on
    fallback: bool  # the target lets OpenVINO skip candidates that cannot run
    can_start: bool
    reason: Access | None  # the condition reason when it cannot start (or falls back)
    explanation: str  # one paragraph; empty when everything is usable
    # What OpenVINO is asked to compile for: AUTO's list without the candidates found
    # unusable (AUTO itself gives up when one candidate's plugin cannot even load).
    compile_as: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "canStart": self.can_start,
            "fallback": self.fallback,
            "usable": list(self.usable),
            "compiledFor": self.compile_as or self.target,
            "reason": self.reason.value if self.reason else None,
            "explanation": self.explanation,
            "families": [
                {"family": f.family, "access": f.access.value, "cause": f.cause}
                for f in self.findings
            ],
        }


def _finding(
    family: str,
    probes: Sequence[NodeProbe],
    available: Sequence[str],
    identity: Identity,
    *,
    nodes_given: bool,
) -> FamilyFinding:
    access = family_access(probes)
    seen = ", ".join(available) or "no device"
    if access is not None and access is not Access.USABLE:
        failing = [probe for probe in probes if probe.access is access]
        causes = "; ".join(probe.describe(identity) for probe in failing[:3])
        if not _listed_by_openvino(family, available):
            causes += f"; OpenVINO sees no {family} (it sees {seen})"
        # Nodes found at the standard paths were not handed over by anyone: failing to open
        # them stops a target that needs the family, but AUTO may still fall back.
        return FamilyFinding(family, access, causes, node_failure=nodes_given)
    if family in NODELESS_FAMILIES or _listed_by_openvino(family, available):
        return FamilyFinding(family, Access.USABLE, "", node_failure=False)
    if access is Access.USABLE:
        opened = ", ".join(probe.path for probe in probes if probe.access is Access.USABLE)
        return FamilyFinding(
            family,
            Access.DRIVER_MISSING,
            f"{opened} opens, yet OpenVINO lists no {family} (it sees {seen}): the image lacks "
            f"the {family} plugin or its user-space driver, or the kernel driver does not "
            f"support this device",
            node_failure=False,
        )
    given = "the pod was given" if nodes_given else "the container has"
    return FamilyFinding(
        family,
        Access.DEVICE_MISSING,
        f"OpenVINO sees no {family} (it sees {seen}) and {given} no {family} device node",
        node_failure=False,
    )


def _fix_hint(access: Access, family: str, *, nodes_given: bool) -> str:
    if not nodes_given:
        return _container_fix_hint(access, family)
    return {
        Access.GROUP_MISSING: "add the owning GID to the pod's supplementalGroups (operator "
        "setting renderGroupId, or the node agent's discovered GIDs)",
        Access.CGROUP_DENIED: "request the accelerator's device-plugin resource "
        "(accessMode DevicePlugin with the plugin installed) or use HostDevices with "
        "allowPrivileged in the operator settings",
        Access.DEVICE_MISSING: "run the pod on a node that has the device (node selector, or "
        "the device plugin's resource) and check the device root the operator mounts",
        Access.DRIVER_MISSING: "load the device's kernel driver on the node and use an image "
        "with its user-space driver (the runtime-gpu image for GPU and NPU)",
        Access.USABLE: "",
    }[access]


def _container_fix_hint(access: Access, family: str) -> str:
    """The same fixes for a container started by hand (docker or podman flags)."""
    path = STANDARD_DEVICE_PATHS.get(family, "/dev/<device>")
    return {
        Access.GROUP_MISSING: "run the server in the device node's group (docker/podman "
        "--group-add <that GID>; in Kubernetes, the pod's supplementalGroups)",
        Access.CGROUP_DENIED: f"pass the device into the container (docker/podman --device "
        f"{path}), which also grants it in the container's device cgroup",
        Access.DEVICE_MISSING: f"pass the device into the container (docker/podman --device "
        f"{path}; under WSL2 --device {WSL_GPU_PATH} with /usr/lib/wsl mounted) on a host "
        f"that has it",
        Access.DRIVER_MISSING: "load the device's kernel driver on the host and use an image "
        "with its user-space driver (the runtime-gpu image for GPU and NPU)",
        Access.USABLE: "",
    }[access]


def _wanted_families(target: Target, available: Sequence[str]) -> tuple[str, ...]:
    if target.is_open_auto:
        # AUTO names no candidate: whatever OpenVINO lists, minus the exclusions.
        return tuple(
            dict.fromkeys(
                name.split(".")[0]
                for name in available
                if name.split(".")[0] not in target.exclusions
            )
        )
    return target.families()


def assess(
    target_device: str,
    probes: Sequence[NodeProbe],
    available: Sequence[str],
    identity: Identity,
    *,
    nodes_given: bool = True,
) -> TargetVerdict:
    """``nodes_given``: the probes are of nodes the operator handed the pod (rather than what
    was found at the standard paths of a container started by hand)."""
    target: Target = parse_target(target_device)
    by_family: dict[str, list[NodeProbe]] = {}
    for probe in probes:
        by_family.setdefault(probe.family, []).append(probe)
    wanted = _wanted_families(target, available)
    if nodes_given:
        # Nodes the pod was given are checked even when the target could do without them.
        checked = tuple(dict.fromkeys([*wanted, *by_family]))
    else:
        # Nodes found by looking are the target's business only where it could use them.
        could_use = [
            family
            for family in by_family
            if (family not in target.exclusions if target.is_open_auto else family in wanted)
        ]
        checked = tuple(dict.fromkeys([*wanted, *could_use]))
    findings = tuple(
        _finding(family, by_family.get(family, []), available, identity, nodes_given=nodes_given)
        for family in checked
    )
    usable = tuple(f.family for f in findings if f.access is Access.USABLE and f.family in wanted)
    failures = [f for f in findings if f.access is not Access.USABLE]
    fallback = target.virtual == "AUTO"
    blocking = [f for f in failures if f.node_failure or not fallback]
    can_start = not blocking and bool(usable)
    if not failures and usable:
        return TargetVerdict(
            target_device, findings, usable, fallback, True, None, "", target_device
        )
    explaining = blocking or failures
    reason = explaining[0].access if explaining else Access.DEVICE_MISSING
    causes = " ".join(f"{f.family}: {f.cause}." for f in failures) or (
        f"OpenVINO lists no device the target can use (it sees {', '.join(available) or 'none'})."
    )
    compile_as = target_device
    if can_start and fallback and not target.is_open_auto:
        compile_as = "AUTO:" + ",".join(
            str(device) for device in target.candidates if device.family in usable
        )
    if can_start:
        explanation = (
            f"target_device {target_device} runs on {', '.join(usable)} only: {causes} AUTO "
            f"allows falling back, so the server starts and compiles for {compile_as}; to use "
            f"the rest, "
            f"{_fix_hint(failures[0].access, failures[0].family, nodes_given=nodes_given)}."
        )
    else:
        not_falling = (
            " AUTO's fallback does not cover a device node the pod was given but cannot open."
            if fallback and blocking
            else " AUTO found none of its candidates usable."
            if fallback
            else f" The server does not fall back to another device: {target_device} does not "
            f"allow it."
        )
        failing_family = explaining[0].family if explaining else ""
        hint = _fix_hint(reason, failing_family, nodes_given=nodes_given)
        explanation = (
            f"target_device {target_device} cannot run in this container: {causes}"
            f"{not_falling} To fix it, {hint}."
        )
    return TargetVerdict(
        target_device, findings, usable, fallback, can_start, reason, explanation, compile_as
    )


def standard_device_paths(families: Iterable[str], root: Path = Path("/")) -> dict[str, str]:
    """Where the kernel puts each family's device nodes; ``root`` stands for ``/`` (tests)."""
    paths: dict[str, str] = {}
    for family in families:
        standard = STANDARD_DEVICE_PATHS.get(family)
        if standard is None:
            continue
        wsl = family == "GPU" and _under(root, WSL_GPU_PATH).exists()
        if wsl and not _under(root, standard).exists():
            standard = WSL_GPU_PATH
        paths[family] = str(_under(root, standard))
    return paths


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


@dataclass
class DeviceReport:
    """Everything the diagnostics endpoint, the metrics and the start-up log say.

    ``standard_root`` is set when nobody declared the device paths: each target's families are
    then probed at their standard paths the first time a target needs them."""

    identity: Identity
    openvino_devices: tuple[str, ...]
    probes: list[NodeProbe]
    verdicts: dict[str, TargetVerdict] = field(default_factory=dict)
    standard_root: Path | None = None

    @property
    def nodes_given(self) -> bool:
        return self.standard_root is None

    def judge(self, target_device: str) -> TargetVerdict:
        if target_device not in self.verdicts:
            if self.standard_root is not None:
                self._probe_standard_paths(parse_target(target_device))
            self.verdicts[target_device] = assess(
                target_device,
                self.probes,
                self.openvino_devices,
                self.identity,
                nodes_given=self.nodes_given,
            )
        return self.verdicts[target_device]

    def _probe_standard_paths(self, target: Target) -> None:
        assert self.standard_root is not None
        probed = {probe.family for probe in self.probes}
        if target.is_open_auto:
            # Any family AUTO could pick, where the host put nodes for it.
            families = [f for f in STANDARD_DEVICE_PATHS if f not in target.exclusions]
            paths = {
                family: path
                for family, path in standard_device_paths(families, self.standard_root).items()
                if Path(path).exists()
            }
        else:
            paths = standard_device_paths(target.families(), self.standard_root)
        for family, path in paths.items():
            if family not in probed:
                self.probes.extend(probe_path(family, path))

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.identity.uid,
            "groups": list(self.identity.groups),
            "openvinoDevices": list(self.openvino_devices),
            "deviceNodesFrom": DEVICE_PATHS_ENV if self.nodes_given else "standard paths",
            "deviceNodes": [
                {
                    "family": probe.family,
                    "path": probe.path,
                    "access": probe.access.value,
                    "error": probe.error,
                    "ownerGid": probe.owner_gid,
                    "mode": f"{probe.mode:04o}" if probe.mode is not None else None,
                }
                for probe in self.probes
            ],
            "targets": [verdict.as_dict() for verdict in self.verdicts.values()],
        }


def termination_message(verdict: TargetVerdict) -> str:
    """The form the operator reads back from the pod status: reason first, then the paragraph."""
    reason = verdict.reason or Access.DEVICE_MISSING
    return f"DeviceAccess={reason.value}: {verdict.explanation}"


def report_from_environment(
    available: Sequence[str], targets: Iterable[str] = (), standard_root: Path = Path("/")
) -> DeviceReport:
    """The operator's declared paths when it set them (even empty: a pod that needs no device
    node); otherwise the standard paths of the families ``targets`` need."""
    declared = os.environ.get(DEVICE_PATHS_ENV)
    if declared is not None:
        paths = parse_device_paths(declared)
        return DeviceReport(Identity.current(), tuple(available), probe_all(paths))
    report = DeviceReport(Identity.current(), tuple(available), [], standard_root=standard_root)
    for target in targets:
        report.judge(target)
    return report
