"""What the node agent sees on a node, and the Node patch it writes.

The device trees are real: character device nodes made with mknod (this tier runs as root in
CI), the sysfs files a kernel shows for a DRM device and a USB stick.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevino_operator.discovery import DiscoveredNode, scan
from kubevino_operator.nodeagent import describe, node_patch


def _char(path: Path, major: int, minor: int, gid: int, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
    os.chown(path, 0, gid)
    path.chmod(mode)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def node_root(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    if os.geteuid() != 0:
        pytest.fail("the discovery tests make device nodes with mknod: run them as root")
    dev, sys = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    sys.mkdir()
    yield dev, sys
    for node in dev.rglob("*"):
        if node.is_char_device():
            node.unlink()


def test_an_intel_gpu_and_npu_node_is_labelled_with_its_render_gids(
    node_root: tuple[Path, Path],
) -> None:
    dev, sys = node_root
    _char(dev / "dri" / "card0", 226, 0, 44, 0o660)
    _char(dev / "dri" / "renderD128", 226, 128, 110, 0o660)
    _char(dev / "accel" / "accel0", 261, 0, 992, 0o660)
    _write(sys / "class" / "drm" / "renderD128" / "device" / "vendor", "0x8086")
    found = scan(dev, sys)
    assert found.accelerators == ("intel-gpu", "intel-npu")
    assert found.render_gids == (110, 992)
    assert [n.path for n in found.found["intel-gpu"]] == ["/dev/dri/renderD128"]
    patch = node_patch(found, {"metadata": {"name": "n1", "labels": {"zone": "a"}}})
    assert patch is not None
    assert patch["metadata"]["labels"] == {
        "kubevino.io/accelerator-intel-gpu": "true",
        "kubevino.io/accelerator-intel-npu": "true",
        "kubevino.io/discovered": "true",
    }
    annotations = patch["metadata"]["annotations"]
    assert annotations["kubevino.io/render-gids"] == "110,992"
    details = json.loads(annotations["kubevino.io/devices"])
    assert details["accelerators"]["intel-npu"] == [
        {"path": "/dev/accel/accel0", "gid": 992, "mode": "0660"}
    ]
    assert "intel-gpu: /dev/dri/renderD128 (gid 110, 0660)" in describe(found)
    read_back = DiscoveredNode.from_node({"metadata": {"name": "n1", **patch["metadata"]}})
    assert read_back.accelerators == {"intel-gpu", "intel-npu"}
    assert read_back.render_gids == {110, 992}


def test_a_render_node_of_another_vendor_is_not_an_intel_gpu(
    node_root: tuple[Path, Path],
) -> None:
    dev, sys = node_root
    _char(dev / "dri" / "renderD128", 226, 128, 110, 0o660)
    _write(sys / "class" / "drm" / "renderD128" / "device" / "vendor", "0x10de")
    assert scan(dev, sys).accelerators == ()


def test_wsl2_hddl_and_an_ncs2_by_its_usb_vendor(node_root: tuple[Path, Path]) -> None:
    dev, sys = node_root
    _char(dev / "dxg", 10, 63, 0, 0o666)
    _char(dev / "ion", 10, 62, 0, 0o660)
    _char(dev / "bus" / "usb" / "003" / "002", 189, 257, 100, 0o660)
    _write(sys / "bus" / "usb" / "devices" / "3-1" / "idVendor", "03e7")
    _write(sys / "bus" / "usb" / "devices" / "3-1" / "idProduct", "2485")
    _write(sys / "bus" / "usb" / "devices" / "usb3" / "idVendor", "1d6b")
    found = scan(dev, sys)
    assert found.accelerators == ("intel-gpu-wsl2", "ncs2", "hddl")
    assert found.usb_products == ("03e7:2485",)
    assert found.render_gids == ()  # /dev/dxg is open to all: no group to hand out


def test_usb_nodes_without_a_movidius_stick_are_no_ncs2(node_root: tuple[Path, Path]) -> None:
    dev, sys = node_root
    _char(dev / "bus" / "usb" / "001" / "001", 189, 0, 0, 0o664)
    _write(sys / "bus" / "usb" / "devices" / "usb1" / "idVendor", "1d6b")
    assert scan(dev, sys).accelerators == ()


def test_a_device_that_went_away_loses_its_label_and_nothing_else_is_touched(
    node_root: tuple[Path, Path],
) -> None:
    dev, sys = node_root
    _char(dev / "accel" / "accel0", 261, 0, 992, 0o660)
    before = {
        "metadata": {
            "labels": {
                "kubevino.io/accelerator-intel-gpu": "true",
                "kubevino.io/accelerator-intel-npu": "true",
                "kubevino.io/discovered": "true",
                "team": "vision",
            },
            "annotations": {"kubevino.io/render-gids": "110,992", "owner": "ml"},
        }
    }
    patch = node_patch(scan(dev, sys), before)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"kubevino.io/accelerator-intel-gpu": None}
    assert patch["metadata"]["annotations"]["kubevino.io/render-gids"] == "992"
    applied = {
        "metadata": {
            "labels": {
                "kubevino.io/accelerator-intel-npu": "true",
                "kubevino.io/discovered": "true",
            },
            "annotations": {
                key: value
                for key, value in patch["metadata"]["annotations"].items()
                if value is not None
            },
        }
    }
    assert node_patch(scan(dev, sys), applied) is None  # unchanged: no write


def test_a_node_with_nothing_is_still_marked_as_reported(node_root: tuple[Path, Path]) -> None:
    dev, sys = node_root
    patch = node_patch(scan(dev, sys), {"metadata": {}})
    assert patch is not None
    assert patch["metadata"]["labels"] == {"kubevino.io/discovered": "true"}
    assert "kubevino.io/render-gids" not in patch["metadata"]["annotations"]
