"""Fake accelerators: device nodes as udev makes them on a host with the device, in a node's
own device directory.

With the real majors nothing answers behind a node, so open() ends in ENXIO once the pod may
open it (the grant and the group are right, the driver is missing). Made "openable", a node
carries ``/dev/null``'s numbers instead: open() succeeds once access is right, OpenVINO finds no
device behind it and an ``AUTO:GPU,CPU`` model serves on CPU, which is what a demo or a test
that wants a model Ready on a fake GPU node needs.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

NULL_DEVICE = (1, 3)


@dataclass(frozen=True)
class FakeDevice:
    relative_path: str  # below the device root, e.g. dri/renderD128
    major: int
    minor: int
    gid: int
    mode: int = 0o660


def fake_devices(
    render_gid: int | None, npu: bool, openable: bool = False
) -> tuple[FakeDevice, ...]:
    """An Intel GPU's render node owned by ``render_gid``; an Intel NPU's accel node, owned by
    the same render group (root's where there is none), as Intel's udev rules do."""
    found = []
    if render_gid is not None:
        found.append(FakeDevice("dri/renderD128", *(NULL_DEVICE if openable else (226, 128)),
                                gid=render_gid))  # fmt: skip
    if npu:
        found.append(FakeDevice("accel/accel0", *(NULL_DEVICE if openable else (261, 0)),
                                gid=render_gid or 0))  # fmt: skip
    return tuple(found)


def make_devices(root: Path, devices: tuple[FakeDevice, ...]) -> None:
    """Each device node under ``root`` (a directory readable by the pods' non-root users)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for device in devices:
        path = root / device.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        path.unlink(missing_ok=True)
        os.mknod(path, stat.S_IFCHR | device.mode, os.makedev(device.major, device.minor))
        os.chown(path, 0, device.gid)
        path.chmod(device.mode)


def remove_devices(root: Path, devices: tuple[FakeDevice, ...]) -> None:
    """The device nodes gone, as when a device is unplugged or its driver unloaded."""
    for device in devices:
        (root / device.relative_path).unlink(missing_ok=True)
