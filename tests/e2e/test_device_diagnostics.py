"""Wrong device setups, said in the InferenceModel within a minute, then fixed by settings.

One GPU model (``AUTO:GPU,CPU``, so it can serve on this CPU-only node once its device opens)
goes through what users get wrong, each made for real on the node: the operator installed by
helm, settings changed with ``helm upgrade``, the server's own device check in the pod.

* host devices while the settings forbid privilege → ``NotAllowed`` (the operator refuses);
* a device plugin that mounts the node without a device-cgroup grant → ``CgroupDenied`` (EPERM);
* the wrong render GID → ``GroupMissing`` (EACCES), naming GID 110;
* a device root with no render node → ``DeviceMissing``;
* the right settings → ``DeviceAccess=True`` and ``Ready=True``;
* the wrong GID again, but node discovery on: the node agent reports GID 110 → ``Ready``;
  a model whose node selector picks no reporting node → ``DeviceMissing``.

The fake render node is backed by a real driver (``/dev/null``'s major and minor) so that it
opens once access is right; OpenVINO then finds no GPU behind it and AUTO falls back to CPU,
which the server's diagnostics say. The broken plugin hands over a real DRM major (226:128)
instead: /dev/null is in every container's default device allow-list, a render node is not.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kubevino_devcluster.controlplane import REPO
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.conftest import MODELS, Cluster
from tests.e2e.helpers import node_model_directory, port_forward, upgrade_settings

pytestmark = pytest.mark.e2e

RENDER_GID = 110
WRONG_GID = 4242
NAME = "gpu-diag"


@dataclass(frozen=True)
class Roots:
    good: Path  # dri/renderD128, group 110, mode 0660
    empty: Path  # dri/ with nothing in it
    drm_node: Path  # a real DRM render node number (226:128), group 110, mode 0660
    models: Path


@pytest.fixture(scope="module")
def roots(operator_installed: Cluster) -> Iterator[Roots]:
    base = operator_installed.directory / "diagnostics"
    good, empty = base / "dev-good", base / "dev-empty"
    node = good / "dri" / "renderD128"
    node.parent.mkdir(parents=True)
    (empty / "dri").mkdir(parents=True)
    drm_node = base / "drm" / "renderD128"
    drm_node.parent.mkdir()
    for path, device in ((node, os.makedev(1, 3)), (drm_node, os.makedev(226, 128))):
        os.mknod(path, stat.S_IFCHR | 0o660, device)
        os.chown(path, 0, RENDER_GID)
        path.chmod(0o660)
    for directory in [base, good, good / "dri", empty, empty / "dri", drm_node.parent]:
        directory.chmod(0o755)
    models = node_model_directory(base / "models")
    try:
        yield Roots(good, empty, drm_node, models)
    finally:
        node.unlink(missing_ok=True)
        drm_node.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def gpu_node(operator_installed: Cluster, roots: Roots) -> Iterator[Cluster]:
    """The node as a GPU node looks to node selection; everything reset afterwards."""
    e2e = operator_installed
    e2e.plane.kubectl(
        "label", "node", e2e.node.name, "--overwrite", "intel.feature.node.kubernetes.io/gpu=true"
    )
    try:
        yield e2e
    finally:
        for name in (NAME, f"{NAME}-nowhere"):
            e2e.plane.kubectl("delete", "inferencemodel", name, "-n", MODELS, check=False)
        upgrade_settings(e2e.plane)
        node = _node(e2e)
        ours = [key for key in node["metadata"]["labels"] if key.startswith("kubevino.io/")]
        if ours:
            e2e.plane.kubectl("label", "node", e2e.node.name, *(f"{key}-" for key in ours))
        e2e.plane.kubectl(
            "annotate", "node", e2e.node.name, "kubevino.io/render-gids-", "kubevino.io/devices-"
        )


def _settings(e2e: Cluster, **values: Any) -> None:
    upgrade_settings(e2e.plane, **values)


def _apply(e2e: Cluster, roots: Roots, access_mode: str, name: str = NAME, **serving: Any) -> None:
    manifest = {
        "apiVersion": "kubevino.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": MODELS},
        "spec": {
            "model": {"name": "classifier", "source": {"hostPath": {"path": str(roots.models)}}},
            "device": {"targetDevice": "AUTO:GPU,CPU", "accessMode": access_mode},
            # The CPU image: this node has no GPU for the GPU image's drivers anyway.
            "serving": {"image": e2e.images["runtime"], **serving},
        },
    }
    e2e.plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def _device_access(e2e: Cluster, status: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = condition(get(e2e.plane, "inferencemodel", NAME, MODELS), "DeviceAccess")
        return found if (found.get("status"), found.get("reason")) == (status, reason) else None

    try:
        return wait_until(reached, timeout, f"DeviceAccess {status}/{reason}")
    except AssertionError:
        print(e2e.plane.kubectl("describe", "inferencemodel", NAME, "-n", MODELS).stdout)
        raise


def _node(e2e: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        e2e.plane.kubectl("get", "node", e2e.node.name, "-o", "json").stdout
    )
    return found


def _described(e2e: Cluster) -> str:
    return e2e.plane.kubectl("describe", "inferencemodel", NAME, "-n", MODELS).stdout


def _ready_stays_false(e2e: Cluster, reason: str) -> None:
    model = get(e2e.plane, "inferencemodel", NAME, MODELS)
    assert condition(model, "Ready")["status"] == "False"
    assert reason in _described(e2e)


@pytest.fixture
def mount_only_plugin(gpu_node: Cluster, roots: Roots) -> Iterator[None]:
    """A broken GPU plugin: it bind-mounts the render node but grants no device access."""
    plugin = subprocess.Popen(
        gpu_node.node.inside(
            sys.executable, "-m", "tests.e2e.deviceplugin", "--mount-only", "gpu.intel.com/i915",
            f"/dev/dri/renderD128={roots.drm_node}", cwd=REPO,
        ),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert plugin.stdout is not None
        line = plugin.stdout.readline()
        assert line.startswith("registered"), line + plugin.stdout.read()

        def advertised() -> bool:
            allocatable = _node(gpu_node)["status"]["allocatable"]
            return bool(allocatable.get("gpu.intel.com/i915") == "1")

        wait_until(advertised, 60, "the plugin's resource advertised")
        yield
    finally:
        plugin.terminate()
        try:
            plugin.wait(10)
        except subprocess.TimeoutExpired:
            plugin.kill()
            plugin.wait()


def test_refused_privilege_then_a_plugin_without_a_grant(
    gpu_node: Cluster, roots: Roots, mount_only_plugin: None
) -> None:
    e2e = gpu_node
    _settings(e2e, allowPrivileged=False, renderGroupId=RENDER_GID, deviceRoot=roots.good)
    _apply(e2e, roots, "HostDevices")
    refused = _device_access(e2e, "False", "NotAllowed")
    assert "gpu.intel.com/i915" in refused["message"] and "allowPrivileged" in refused["message"]
    _ready_stays_false(e2e, "NotAllowed")

    _apply(e2e, roots, "DevicePlugin")
    denied = _device_access(e2e, "False", "CgroupDenied")
    assert (
        "/dev/dri/renderD128 is refused by the container's device cgroup (EPERM)"
        in (denied["message"])
    )
    assert "handed the pod its device node without a device-cgroup grant" in denied["message"]
    _ready_stays_false(e2e, "CgroupDenied")


def test_the_wrong_render_group_then_no_device_then_fixed(gpu_node: Cluster, roots: Roots) -> None:
    e2e = gpu_node
    _settings(e2e, allowPrivileged=True, renderGroupId=WRONG_GID, deviceRoot=roots.good)
    _apply(e2e, roots, "HostDevices")
    missing_group = _device_access(e2e, "False", "GroupMissing")
    message = missing_group["message"]
    assert f"on node {e2e.node.name} the device belongs to GID {RENDER_GID}" in message
    assert f"supplementalGroups [{WRONG_GID}]" in message
    assert f"set renderGroupId: {RENDER_GID}" in message
    _ready_stays_false(e2e, "GroupMissing")
    events = e2e.plane.kubectl(
        "get", "events", "-n", MODELS, "--field-selector",
        f"involvedObject.kind=InferenceModel,involvedObject.name={NAME},reason=GroupMissing",
        "-o", "json",
    ).stdout  # fmt: skip
    assert json.loads(events)["items"], "a Warning Event says it too"

    _settings(e2e, allowPrivileged=True, renderGroupId=RENDER_GID, deviceRoot=roots.empty)
    no_device = _device_access(e2e, "False", "DeviceMissing")
    assert "/dev/dri holds no device node" in no_device["message"]
    _ready_stays_false(e2e, "DeviceMissing")

    _settings(e2e, allowPrivileged=True, renderGroupId=RENDER_GID, deviceRoot=roots.good)
    _device_access(e2e, "True", "DevicesUsable", timeout=120)
    model = get(e2e.plane, "inferencemodel", NAME, MODELS)
    assert condition(model, "Ready")["status"] == "True"
    # The server says what it chose: the GPU node opens, OpenVINO has no GPU, AUTO fell back.
    with port_forward(e2e.plane, MODELS, f"service/{NAME}", 8000) as (rest,):
        report = httpx.get(f"http://127.0.0.1:{rest}/kubevino/diagnostics", timeout=10).json()
    (node,) = report["devices"]["deviceNodes"]
    assert (node["path"], node["access"], node["ownerGid"]) == (
        "/dev/dri/renderD128",
        "Usable",
        RENDER_GID,
    )
    (verdict,) = report["devices"]["targets"]
    assert verdict["compiledFor"] == "AUTO:CPU" and verdict["reason"] == "DriverMissing"
    assert report["models"][0]["executionDevices"] == ["CPU"]


def test_node_discovery_supplies_the_render_gid_each_node_has(
    gpu_node: Cluster, roots: Roots
) -> None:
    e2e = gpu_node
    _settings(
        e2e,
        allowPrivileged=True,
        renderGroupId=WRONG_GID,
        deviceRoot=roots.good,
        nodeDiscovery=True,
        **{"nodeAgent.enabled": True, "nodeAgent.deviceRoot": roots.good},
    )

    def reported() -> dict[str, Any] | None:
        node = _node(e2e)
        labels = node["metadata"].get("labels") or {}
        return node if labels.get("kubevino.io/accelerator-intel-gpu") == "true" else None

    node = wait_until(reported, 90, "the node agent's report")
    assert node["metadata"]["annotations"]["kubevino.io/render-gids"] == str(RENDER_GID)
    _apply(e2e, roots, "HostDevices")
    _device_access(e2e, "True", "DevicesUsable", timeout=150)
    deployment = get(e2e.plane, "deployment", NAME, MODELS)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["supplementalGroups"] == [RENDER_GID]
    assert pod["nodeSelector"] == {"kubevino.io/accelerator-intel-gpu": "true"}

    _apply(e2e, roots, "HostDevices", name=f"{NAME}-nowhere", nodeSelector={"pool": "nowhere"})

    def nowhere() -> dict[str, Any] | None:
        model = get(e2e.plane, "inferencemodel", f"{NAME}-nowhere", MODELS)
        found = condition(model, "DeviceAccess")
        return found if found.get("reason") == "DeviceMissing" else None

    missing = wait_until(nowhere, 60, "no node with the accelerator")
    assert "no node the pods may land on reports intel-gpu" in missing["message"]
