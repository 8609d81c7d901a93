"""Per-node accelerator discovery: what the node agent finds, and how the operator reads it.

The agent looks at a node's ``/dev`` and ``/sys`` (read-only) and writes what it found onto its
Node object under ``kubevino.io/``: one label per accelerator profile present (so pods can be
steered with a plain node selector) and annotations with the render nodes' GIDs and the details.
The operator reads those back into an ``Inventory`` and renders from it: the render GIDs of the
nodes a pod may land on instead of one GID guessed for the whole cluster.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubevino_operator.api import AcceleratorName
from kubevino_operator.profiles import PROFILES

PREFIX = "kubevino.io/"
ACCELERATOR_LABEL_PREFIX = f"{PREFIX}accelerator-"
DISCOVERED_LABEL = f"{PREFIX}discovered"
RENDER_GIDS_ANNOTATION = f"{PREFIX}render-gids"
DEVICES_ANNOTATION = f"{PREFIX}devices"
INTEL_PCI_VENDOR = "0x8086"
MOVIDIUS_USB_VENDOR = "03e7"  # NCS2 before (2485) and after (f63b) its firmware load

# Profiles the agent can see from the node's device tree (NVIDIA's plugin labels its own nodes).
DISCOVERABLE: tuple[AcceleratorName, ...] = (
    "intel-gpu",
    "intel-gpu-wsl2",
    "intel-npu",
    "ncs2",
    "hddl",
)


def accelerator_label(name: AcceleratorName) -> str:
    return f"{ACCELERATOR_LABEL_PREFIX}{name}"


@dataclass(frozen=True)
class FoundNode:
    """A device node the agent saw."""

    path: str  # as on the node, e.g. /dev/dri/renderD128
    gid: int
    mode: str


@dataclass(frozen=True)
class NodeDevices:
    """What one node has, per accelerator profile."""

    found: Mapping[AcceleratorName, tuple[FoundNode, ...]] = field(default_factory=dict)
    usb_products: tuple[str, ...] = ()

    @property
    def accelerators(self) -> tuple[AcceleratorName, ...]:
        return tuple(name for name in DISCOVERABLE if self.found.get(name))

    @property
    def render_gids(self) -> tuple[int, ...]:
        """GIDs owning the nodes the render group opens (GPU render nodes, NPU accel nodes).

        Only where the group is what grants access: a node anyone may open (WSL2's /dev/dxg
        is 0666) needs no group, and root's group is never handed to a pod."""
        return tuple(
            sorted(
                {
                    node.gid
                    for name in self.accelerators
                    if "render" in PROFILES[name].groups
                    for node in self.found[name]
                    if node.gid != 0 and int(node.mode, 8) & 0o006 != 0o006
                }
            )
        )

    def labels(self) -> dict[str, str | None]:
        """Labels to merge-patch: ours for what is present, null for what went away."""
        wanted: dict[str, str | None] = {
            accelerator_label(name): ("true" if self.found.get(name) else None)
            for name in DISCOVERABLE
        }
        wanted[DISCOVERED_LABEL] = "true"
        return wanted

    def annotations(self) -> dict[str, str | None]:
        details = {
            name: [{"path": n.path, "gid": n.gid, "mode": n.mode} for n in self.found[name]]
            for name in self.accelerators
        }
        body: dict[str, Any] = {"accelerators": details}
        if self.usb_products:
            body["ncs2UsbIds"] = list(self.usb_products)
        gids = ",".join(str(gid) for gid in self.render_gids)
        return {
            RENDER_GIDS_ANNOTATION: gids or None,
            DEVICES_ANNOTATION: json.dumps(body, sort_keys=True, separators=(",", ":")),
        }


def _char_nodes(directory: Path, pattern: str) -> list[Path]:
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(pattern)):
        try:
            if stat.S_ISCHR(path.stat().st_mode):
                found.append(path)
        except OSError:
            continue
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return None


def _intel_or_unknown(sys_root: Path, device_class: str, name: str) -> bool:
    """Intel's PCI vendor, or no sysfs entry to say otherwise (e.g. WSL2, containers)."""
    vendor = _read(sys_root / "class" / device_class / name / "device" / "vendor")
    return vendor is None or vendor == INTEL_PCI_VENDOR


def _found(device_root: Path, path: Path) -> FoundNode:
    info = path.stat()
    shown = "/dev/" + str(path.relative_to(device_root))
    return FoundNode(shown, info.st_gid, f"{stat.S_IMODE(info.st_mode):04o}")


def scan(device_root: Path, sys_root: Path) -> NodeDevices:
    """Look, never open: stat device nodes under ``device_root``, read ``sys_root``."""
    found: dict[AcceleratorName, tuple[FoundNode, ...]] = {}
    render = [
        path
        for path in _char_nodes(device_root / "dri", "renderD*")
        if _intel_or_unknown(sys_root, "drm", path.name)
    ]
    found["intel-gpu"] = tuple(_found(device_root, path) for path in render)
    accel = [
        path
        for path in _char_nodes(device_root / "accel", "accel*")
        if _intel_or_unknown(sys_root, "accel", path.name)
    ]
    found["intel-npu"] = tuple(_found(device_root, path) for path in accel)
    found["intel-gpu-wsl2"] = tuple(
        _found(device_root, path) for path in _char_nodes(device_root, "dxg")
    )
    found["hddl"] = tuple(_found(device_root, path) for path in _char_nodes(device_root, "ion"))
    products = []
    usb_devices = sys_root / "bus" / "usb" / "devices"
    if usb_devices.is_dir():
        for device in sorted(usb_devices.iterdir()):
            if _read(device / "idVendor") == MOVIDIUS_USB_VENDOR:
                products.append(f"{MOVIDIUS_USB_VENDOR}:{_read(device / 'idProduct') or '?'}")
    usb_nodes = _char_nodes(device_root / "bus" / "usb", "*/*")
    found["ncs2"] = tuple(_found(device_root, path) for path in usb_nodes) if products else ()
    return NodeDevices({name: nodes for name, nodes in found.items() if nodes}, tuple(products))


@dataclass(frozen=True)
class DiscoveredNode:
    """A Node as the operator reads it back."""

    name: str
    labels: Mapping[str, str]
    accelerators: frozenset[AcceleratorName]
    render_gids: frozenset[int]

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> DiscoveredNode:
        metadata = node.get("metadata") or {}
        labels: dict[str, str] = dict(metadata.get("labels") or {})
        annotations: dict[str, str] = dict(metadata.get("annotations") or {})
        accelerators = frozenset(
            name for name in DISCOVERABLE if labels.get(accelerator_label(name)) == "true"
        )
        gids = frozenset(
            int(part)
            for part in (annotations.get(RENDER_GIDS_ANNOTATION) or "").split(",")
            if part.strip().isdigit()
        )
        return cls(str(metadata.get("name", "")), labels, accelerators, gids)


# How a DeviceClass names its driver (Intel's, the upstream examples', every driver's own).
_CLASS_DRIVER = re.compile(r"""^\s*device\.driver\s*==\s*["']([\w.-]+)["']\s*$""")


@dataclass(frozen=True)
class DraFacts:
    """What the cluster offers Dynamic Resource Allocation: its DeviceClasses, and what the
    drivers' ResourceSlices publish (the scheduler allocates from those and nothing else)."""

    served: bool  # the API server serves resource.k8s.io/v1
    device_classes: frozenset[str] = frozenset()
    # (class, driver) for each class whose selector names its driver.
    class_drivers: frozenset[tuple[str, str]] = frozenset()
    # (driver, node) for each node a driver's slices publish at least one device on ("" for
    # devices not bound to one node); and every driver with a slice at all.
    published: frozenset[tuple[str, str]] = frozenset()
    drivers_with_slices: frozenset[str] = frozenset()

    @classmethod
    def from_objects(
        cls, classes: Iterable[Mapping[str, Any]], slices: Iterable[Mapping[str, Any]]
    ) -> DraFacts:
        names, drivers = set(), set()
        for device_class in classes:
            name = str(device_class["metadata"]["name"])
            names.add(name)
            expressions = [
                ((selector.get("cel") or {}).get("expression") or "")
                for selector in (device_class.get("spec") or {}).get("selectors") or []
            ]
            for expression in expressions:
                named = _CLASS_DRIVER.match(expression)
                if named is not None:
                    drivers.add((name, named.group(1)))
        published, sliced = set(), set()
        for resource_slice in slices:
            spec = resource_slice.get("spec") or {}
            driver = str(spec.get("driver", ""))
            sliced.add(driver)
            if spec.get("devices"):
                published.add((driver, str(spec.get("nodeName") or "")))
        return cls(
            True, frozenset(names), frozenset(drivers), frozenset(published), frozenset(sliced)
        )

    def driver_of(self, device_class: str) -> str | None:
        """The driver a class allocates from, when its selectors say so plainly."""
        drivers = {driver for name, driver in self.class_drivers if name == device_class}
        return drivers.pop() if len(drivers) == 1 else None

    def nodes_publishing(self, driver: str) -> tuple[str, ...]:
        return tuple(sorted(node for name, node in self.published if name == driver))


@dataclass(frozen=True)
class Inventory:
    """The nodes the agent has reported on (an empty inventory: the agent runs nowhere yet),
    and the cluster's DRA facts when a model asked for ResourceClaim mode (None: not read)."""

    nodes: tuple[DiscoveredNode, ...] = ()
    dra: DraFacts | None = None

    @classmethod
    def from_nodes(cls, nodes: Iterable[Mapping[str, Any]]) -> Inventory:
        discovered = [DiscoveredNode.from_node(node) for node in nodes]
        return cls(
            tuple(
                sorted(
                    (node for node in discovered if node.labels.get(DISCOVERED_LABEL) == "true"),
                    key=lambda node: node.name,
                )
            )
        )

    def nodes_with(
        self, accelerator: AcceleratorName, selector: Mapping[str, str]
    ) -> tuple[DiscoveredNode, ...]:
        """Nodes that have the accelerator and match the pod's node selector."""
        return tuple(
            node
            for node in self.nodes
            if accelerator in node.accelerators
            and all(node.labels.get(key) == value for key, value in selector.items())
        )

    def fingerprint(self) -> tuple[object, ...]:
        """What renders depend on: a change re-renders the models."""
        nodes = tuple((n.name, frozenset(n.accelerators), n.render_gids) for n in self.nodes)
        return (nodes, self.dra)
