"""The server says exactly why a device is unusable, before it compiles anything.

Each class comes from a real ``open()`` of a device node this test makes with ``mknod``, owned
by another uid and opened by the server without any capability (so the file mode binds it as
it binds a pod's process; a capable root would open anything):

* usable: a node backed by a real driver (``/dev/null``'s major and minor);
* DeviceMissing: the declared path does not exist;
* GroupMissing: a render node (226:128) owned by group 110, mode 0660;
* DriverMissing: a render node with no DRM driver on this machine (ENXIO) and a misc minor
  nobody registered (ENODEV).

CgroupDenied (EPERM) needs a device cgroup: the node tier produces it in a real pod.

Standalone (no ``KUBEVINO_DEVICE_PATHS``, a container started by hand): the server runs in a
mount namespace whose ``/dev`` holds only what the test put there, as a container's does, and
finds the nodes at their standard paths.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kubevino_runtime.demo_model import write_model
from tests.runtime.serving import RunningServer, running_server

NODE_OWNER = 1  # not the server's uid: the group bits decide
RENDER_GID = 110


@dataclass(frozen=True)
class FakeNode:
    name: str
    major: int
    minor: int
    gid: int
    mode: int


NODES = {
    "usable": FakeNode("dri-usable/renderD128", 1, 3, RENDER_GID, 0o666),
    "group": FakeNode("dri-group/renderD128", 226, 128, RENDER_GID, 0o660),
    "enxio": FakeNode("dri-nodriver/renderD128", 226, 129, RENDER_GID, 0o666),
    "enodev": FakeNode("misc/dxg", 10, 63, 0, 0o666),
}


@dataclass(frozen=True)
class World:
    root: Path
    model: Path

    def dev(self, name: str) -> str:
        return str(self.root / "dev" / name)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The model and the fake device nodes, removed afterwards (no device node left behind)."""
    if os.geteuid() != 0:
        pytest.fail("the runtime tier makes device nodes with mknod: run it as root")
    root = Path(tempfile.mkdtemp(prefix="kubevino-devices-"))
    try:
        write_model(root / "models" / "classifier")
        for node in NODES.values():
            path = root / "dev" / node.name
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mknod(path, stat.S_IFCHR | node.mode, os.makedev(node.major, node.minor))
            os.chown(path, NODE_OWNER, node.gid)
            path.chmod(node.mode)
        (root / "dev" / "dri-empty").mkdir()
        yield World(root, root / "models" / "classifier")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# What any container's /dev has besides its devices (the kernel's fixed numbers).
CONTAINER_BASICS = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                    "urandom": (1, 9)}  # fmt: skip


def _container_dev(tmp_path: Path, nodes: dict[str, FakeNode] | None = None) -> Path:
    """A /dev as a container started with ``--device`` sees it: the basics plus ``nodes`` at
    their standard paths (e.g. ``dri/renderD128``). Under the test's tmp_path: removed with it."""
    dev = tmp_path / "container-dev"
    (dev / "shm").mkdir(parents=True)
    (dev / "shm").chmod(0o1777)
    for name, (major, minor) in CONTAINER_BASICS.items():
        os.mknod(dev / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        (dev / name).chmod(0o666)
    for name, node in (nodes or {}).items():
        path = dev / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(path, stat.S_IFCHR | node.mode, os.makedev(node.major, node.minor))
        os.chown(path, NODE_OWNER, node.gid)
        path.chmod(node.mode)
    return dev


@contextmanager
def _run(
    world: World,
    target: str,
    device_paths: str | None,
    tmp_path: Path,
    *,
    expect_start: bool,
    dev: Path | None = None,
) -> Iterator[RunningServer]:
    """The server as a pod runs it: no capability, the paths the operator would declare
    (``None``: none declared, as in a container started by hand)."""
    args = ["--model_path", str(world.model), "--model_name", "classifier"]
    args += ["--target_device", target, "--metrics_enable"]
    env = {"KUBEVINO_DEVICE_PATHS": device_paths} if device_paths is not None else {}
    with running_server(
        args, tmp_path, wait_live=expect_start, env=env, unprivileged=True, dev=dev
    ) as server:
        yield server


def _exits_with(
    world: World, target: str, device_paths: str | None, tmp_path: Path, dev: Path | None = None
) -> str:
    with _run(world, target, device_paths, tmp_path, expect_start=False, dev=dev) as server:
        assert server.process.wait(60) == 1, server.log()
        log = server.log()
    message = server.termination_log.read_text()
    assert message.strip() in log, "the log says the same as the termination message"
    return message


@pytest.mark.parametrize(
    ("node", "reason", "said"),
    [
        ("group", "GroupMissing", ["group 110", "uid 0 in groups 0", "EACCES"]),
        ("enxio", "DriverMissing", ["no kernel driver", "ENXIO"]),
        ("enodev", "DriverMissing", ["no kernel driver", "ENODEV"]),
    ],
)
def test_a_device_node_that_does_not_open_stops_the_server_with_its_class(
    world: World, tmp_path: Path, node: str, reason: str, said: list[str]
) -> None:
    path = world.dev(NODES[node].name)
    message = _exits_with(world, "GPU", f"GPU={path}", tmp_path)
    assert message.startswith(f"DeviceAccess={reason}: target_device GPU cannot run"), message
    assert path in message
    for words in said:
        assert words in message, message


def test_a_declared_path_that_is_absent_or_empty_is_device_missing(
    world: World, tmp_path: Path
) -> None:
    absent = world.dev("no-such-dir")
    message = _exits_with(world, "GPU", f"GPU={absent}", tmp_path)
    assert message.startswith("DeviceAccess=DeviceMissing:"), message
    assert f"{absent} does not exist in the container" in message
    empty = world.dev("dri-empty")
    message = _exits_with(world, "GPU", f"GPU={empty}", tmp_path)
    assert f"{empty} holds no device node" in message


def test_auto_fallback_does_not_excuse_a_node_the_pod_was_given_but_cannot_open(
    world: World, tmp_path: Path
) -> None:
    path = world.dev(NODES["group"].name)
    message = _exits_with(world, "AUTO:GPU,CPU", f"GPU={path}", tmp_path)
    assert message.startswith("DeviceAccess=GroupMissing:"), message
    assert "AUTO's fallback does not cover a device node the pod was given" in message


def test_a_gpu_target_on_a_cpu_only_machine_exits_with_the_explanation_not_a_fallback(
    world: World, tmp_path: Path
) -> None:
    message = _exits_with(world, "GPU", "GPU=/dev/dri", tmp_path, dev=_container_dev(tmp_path))
    assert message.startswith("DeviceAccess=DeviceMissing: target_device GPU cannot run"), message
    assert "/dev/dri does not exist in the container" in message
    assert "OpenVINO sees no GPU (it sees CPU)" in message
    assert "does not fall back to another device" in message


def test_a_node_that_opens_while_openvino_lists_no_such_device_is_a_missing_driver(
    world: World, tmp_path: Path
) -> None:
    path = world.dev(NODES["usable"].name)
    message = _exits_with(world, "GPU", f"GPU={path}", tmp_path)
    assert message.startswith("DeviceAccess=DriverMissing:"), message
    assert f"{path} opens, yet OpenVINO lists no GPU (it sees CPU)" in message


def test_auto_with_cpu_among_its_candidates_serves_and_reports_what_it_chose(
    world: World, tmp_path: Path
) -> None:
    path = world.dev(NODES["usable"].name)
    with _run(world, "AUTO:GPU,CPU", f"GPU={path}", tmp_path, expect_start=True) as server:
        server.wait_ready()
        report = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
        devices = report["devices"]
        assert devices["uid"] == 0 and devices["groups"] == [0]
        assert devices["openvinoDevices"] == ["CPU"]
        assert devices["deviceNodes"] == [
            {
                "family": "GPU",
                "path": path,
                "access": "Usable",
                "error": None,
                "ownerGid": RENDER_GID,
                "mode": "0666",
            }
        ]
        (verdict,) = devices["targets"]
        assert verdict["target"] == "AUTO:GPU,CPU"
        assert verdict["canStart"] and verdict["fallback"]
        assert verdict["usable"] == ["CPU"]
        assert verdict["reason"] == "DriverMissing"
        assert "runs on CPU only" in verdict["explanation"]
        assert verdict["compiledFor"] == "AUTO:CPU"
        assert report["models"] == [
            {
                "name": "classifier",
                "version": 1,
                "targetDevice": "AUTO:GPU,CPU",
                "executionDevices": ["CPU"],
                "streams": 0,  # AUTO does not say how many streams its CPU choice runs
                "inferRequests": 1,
                "optimalInferRequests": 1,
                "dynamicBatching": {
                    "maxBatch": 1,
                    "reason": "input input's first dimension is fixed at 1: give the model a "
                    "dynamic batch (batch_size -1 or a range such as 1:8)",
                },
                "enginePid": server.process.pid,  # one front end: the engine is in-process
            }
        ]
        metadata = httpx.get(f"{server.rest}/v2/models/classifier").json()
        assert metadata["execution_devices"] == ["CPU"]
        metrics = httpx.get(f"{server.rest}/metrics").text
        assert (
            f'kubevino_device_access{{access="Usable",family="GPU",path="{path}"}} 1.0' in metrics
        )
        log = server.log()
        assert "OpenVINO sees CPU; device nodes: " + f"{path} Usable" in log
        assert "AUTO allows falling back, so the server starts" in log


def test_cpu_needs_no_device_and_says_so_in_one_line(world: World, tmp_path: Path) -> None:
    with _run(world, "CPU", "", tmp_path, expect_start=True) as server:
        server.wait_ready()
        assert "device nodes: none given" in server.log()
        assert "target_device CPU can use CPU" in server.log()
    with _run(world, "CPU", None, tmp_path, expect_start=True) as server:
        server.wait_ready()
        assert "device nodes (standard paths): none needed" in server.log()
        assert "target_device CPU can use CPU" in server.log()
        report = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
        assert report["devices"]["targets"][0]["canStart"] is True


# --- standalone: no KUBEVINO_DEVICE_PATHS, a container started by hand ----------------------


@pytest.mark.parametrize(
    ("target", "nodes", "reason", "said"),
    [
        pytest.param(
            "GPU",
            {"dri/renderD128": NODES["group"]},
            "GroupMissing",
            ["/dev/dri/renderD128 (group 110, mode 0660)", "uid 0 in groups 0", "EACCES",
             "--group-add"],
            id="gpu-render-node-outside-its-group",
        ),
        pytest.param(
            "GPU",
            {"dri/renderD128": NODES["enxio"]},
            "DriverMissing",
            ["/dev/dri/renderD128 is granted but no kernel driver answers", "ENXIO"],
            id="gpu-render-node-without-driver",
        ),
        pytest.param(
            "GPU",
            {},
            "DeviceMissing",
            ["/dev/dri does not exist in the container", "--device /dev/dri"],
            id="gpu-not-passed-in",
        ),
        pytest.param(
            "GPU",
            {"dxg": NODES["enodev"]},
            "DriverMissing",
            ["/dev/dxg is granted but no kernel driver answers", "ENODEV"],
            id="wsl2-dxg-without-driver",
        ),
        pytest.param(
            "NPU",
            {"accel/accel0": FakeNode("accel/accel0", 261, 0, RENDER_GID, 0o660)},
            "GroupMissing",
            ["/dev/accel/accel0 (group 110, mode 0660)", "EACCES"],
            id="npu-outside-its-group",
        ),
        pytest.param(
            "MULTI:GPU,CPU",
            {"dri/renderD128": NODES["group"]},
            "GroupMissing",
            ["/dev/dri/renderD128 (group 110, mode 0660)", "EACCES"],
            id="multi-needs-every-device",
        ),
    ],
)  # fmt: skip
def test_without_declared_paths_the_standard_device_paths_are_checked(
    world: World,
    tmp_path: Path,
    target: str,
    nodes: dict[str, FakeNode],
    reason: str,
    said: list[str],
) -> None:
    dev = _container_dev(tmp_path, nodes)
    message = _exits_with(world, target, None, tmp_path, dev=dev)
    assert message.startswith(f"DeviceAccess={reason}: target_device {target} cannot run"), message
    for words in said:
        assert words in message, message


def test_without_declared_paths_auto_falls_back_and_says_which_node_failed(
    world: World, tmp_path: Path
) -> None:
    dev = _container_dev(tmp_path, {"dri/renderD128": NODES["group"]})
    with _run(world, "AUTO:GPU,CPU", None, tmp_path, expect_start=True, dev=dev) as server:
        server.wait_ready()
        devices = httpx.get(f"{server.rest}/kubevino/diagnostics").json()["devices"]
        assert devices["deviceNodesFrom"] == "standard paths"
        assert [(n["path"], n["access"], n["error"]) for n in devices["deviceNodes"]] == [
            ("/dev/dri/renderD128", "GroupMissing", "EACCES")
        ]
        (verdict,) = devices["targets"]
        assert verdict["canStart"] and verdict["compiledFor"] == "AUTO:CPU"
        assert verdict["reason"] == "GroupMissing"
        log = server.log()
        assert "device nodes (standard paths): /dev/dri/renderD128 GroupMissing" in log
        assert "runs on CPU only" in log and "--group-add" in log
