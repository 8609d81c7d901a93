"""Device access proven on a real kubelet: for every accelerator profile, the pod the
operator renders opens the profile's device nodes into the "granted" class.

The device nodes are made by the test with the real majors and the owner, group and mode a
host's udev gives them; the settings point the profiles at them. With no driver behind a
fake node, open() tells the classes apart (verified on this node kind):
EPERM = no device cgroup grant, EACCES = user/group cannot open it, ENXIO or ENODEV = access
granted, no driver behind the node (ENODEV where the major's driver exists but not the minor,
as for misc devices under major 10).
"""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import REPO
from kubevino_operator.api import InferenceModel
from kubevino_operator.profiles import PROFILES
from kubevino_operator.render import Rendered, render
from kubevino_operator.resolve import Refusal
from kubevino_operator.settings import Settings
from tests.cluster.conftest import wait_until
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

NAMESPACE = "devices"
RENDER_GID = 110
USB_GID = 100  # "users": OpenVINO's udev rule for Myriad sticks
GRANTED = {"ENXIO", "ENODEV"}


@dataclass(frozen=True)
class FakeDevice:
    relative_path: str
    major: int
    minor: int
    gid: int
    mode: int


# What udev gives these nodes on a real host.
FAKE_DEVICES = (
    FakeDevice("dri/renderD128", 226, 128, RENDER_GID, 0o660),
    FakeDevice("dxg", 10, 63, 0, 0o666),
    FakeDevice("accel/accel0", 261, 0, RENDER_GID, 0o660),
    FakeDevice("bus/usb/003/002", 189, 257, USB_GID, 0o660),
    FakeDevice("ion", 10, 62, 0, 0o660),
)

# Example InferenceModel per profile, in HostDevices mode.
EXAMPLES = {
    "intel-gpu": "gpu-host-devices.yaml",
    "intel-gpu-wsl2": "gpu-wsl2.yaml",
    "intel-npu": "npu.yaml",
    "ncs2": "ncs2-host-devices.yaml",
    "hddl": "hddl.yaml",
}

# Opens every device node below the paths the operator hands the runtime.
PROBE = """
import errno, json, os, stat
results = {}
paths = os.environ.get("KUBEVINO_DEVICE_PATHS") or os.environ.get("PROBE_PATHS", "")
for root in (item.rpartition("=")[2] for item in filter(None, paths.split(","))):
    found = [root] if not os.path.isdir(root) else [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files]
    for path in found:
        if not stat.S_ISCHR(os.stat(path).st_mode):
            continue
        try:
            os.close(os.open(path, os.O_RDWR))
            results[path] = "OPENED"
        except OSError as error:
            results[path] = errno.errorcode[error.errno]
message = json.dumps({"uid": os.getuid(), "groups": sorted(os.getgroups()), "open": results})
open("/dev/termination-log", "w").write(message)
print(message)
"""


@pytest.fixture(scope="module")
def device_root(e2e: Cluster) -> Iterator[Path]:
    root = e2e.directory / "fake-dev"
    for device in FAKE_DEVICES:
        path = root / device.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mknod(path, stat.S_IFCHR | device.mode, os.makedev(device.major, device.minor))
        os.chown(path, 0, device.gid)
        path.chmod(device.mode)
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    yield root
    for device in FAKE_DEVICES:
        (root / device.relative_path).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def settings(e2e: Cluster, device_root: Path) -> Settings:
    host_dirs = e2e.directory / "host-dirs"
    for name in ("wsl", "hddl"):
        (host_dirs / name).mkdir(parents=True, exist_ok=True)
    return Settings.model_validate(
        {
            "runtimeImage": e2e.images["runtime"],
            "allowPrivileged": True,
            "renderGroupId": RENDER_GID,
            "usbGroupId": USB_GID,
            "deviceRoot": str(device_root),
            "wslLibraryPath": str(host_dirs / "wsl"),
            "hddlSocketDir": str(host_dirs / "hddl"),
        }
    )


@pytest.fixture(scope="module")
def labelled_node(e2e: Cluster) -> Cluster:
    """The node carries every profile's node labels, as a node with that hardware would."""
    labels = {k: v for p in PROFILES.values() for k, v in p.node_selector.items()}
    labels["kubevino.io/pool"] = "arc"
    e2e.plane.kubectl(
        "label", "node", e2e.node.name, "--overwrite", *(f"{k}={v}" for k, v in labels.items())
    )
    e2e.plane.kubectl("create", "namespace", NAMESPACE, check=False)
    return e2e


def _example(name: str) -> InferenceModel:
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text())
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["device"]["accessMode"] = "HostDevices"
    return InferenceModel.model_validate(body)


def _probe_pod(
    rendered: Rendered,
    name: str,
    image: str,
    privileged: bool | None,
    namespace: str = NAMESPACE,
    probe_paths: str = "",
) -> dict[str, Any]:
    """The rendered server pod as the kubelet gets it, with the probe in place of the server;
    only what needs objects this test does not create (config, claims) is left out."""
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    spec = copy.deepcopy(deployment["spec"]["template"]["spec"])
    spec.pop("initContainers", None)
    spec["restartPolicy"] = "Never"
    kept = {v["name"] for v in spec["volumes"] if "hostPath" in v or "emptyDir" in v}
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] in kept]
    server = spec["containers"][0]
    server["volumeMounts"] = [m for m in server["volumeMounts"] if m["name"] in kept]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        server.pop(probe, None)
    server.update(image=image, imagePullPolicy="IfNotPresent", command=["python3", "-c", PROBE])
    server["args"] = []
    if privileged is not None:
        server["securityContext"]["privileged"] = privileged
    if probe_paths:
        server["env"] = [*server.get("env", []), {"name": "PROBE_PATHS", "value": probe_paths}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}  # fmt: skip


def _run_probe(e2e: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(pod))

    def finished() -> dict[str, Any] | None:
        got = json.loads(
            e2e.plane.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout
        )
        statuses = got["status"].get("containerStatuses") or []
        terminated = statuses[0]["state"].get("terminated") if statuses else None
        return terminated if terminated else None

    try:
        terminated = wait_until(finished, 120, f"probe pod {name} finished")
    finally:
        e2e.plane.kubectl("delete", "pod", name, "-n", namespace, "--wait=false", check=False)
    assert terminated["exitCode"] == 0, terminated
    result: dict[str, Any] = json.loads(terminated["message"])
    return result


@pytest.mark.parametrize("accelerator", sorted(EXAMPLES))
def test_each_profile_gets_its_devices_granted_in_host_devices_mode(
    labelled_node: Cluster, settings: Settings, accelerator: str
) -> None:
    model = _example(EXAMPLES[accelerator])
    rendered = render(model, settings)
    assert isinstance(rendered, Rendered), rendered
    assert rendered.resolution.accelerators == (accelerator,) or accelerator in (
        rendered.resolution.accelerators
    )
    observed = _run_probe(
        labelled_node, _probe_pod(rendered, f"probe-{accelerator}", settings.runtime_image, None)
    )
    assert observed["open"], f"no device node reached the pod: {observed}"
    assert set(observed["open"].values()) <= GRANTED, observed


def test_without_privilege_the_same_pod_is_denied_by_the_device_cgroup(
    labelled_node: Cluster, settings: Settings
) -> None:
    """The contrast that makes the test above mean something."""
    rendered = render(_example(EXAMPLES["intel-gpu"]), settings)
    assert isinstance(rendered, Rendered)
    pod = _probe_pod(rendered, "probe-unprivileged", settings.runtime_image, privileged=False)
    observed = _run_probe(labelled_node, pod)
    assert set(observed["open"].values()) == {"EPERM"}, observed


def test_without_the_render_group_a_privileged_pod_cannot_open_the_node(
    labelled_node: Cluster, settings: Settings
) -> None:
    rendered = render(_example(EXAMPLES["intel-gpu"]), settings)
    assert isinstance(rendered, Rendered)
    pod = _probe_pod(rendered, "probe-no-group", settings.runtime_image, None)
    pod["spec"]["securityContext"].pop("supplementalGroups", None)
    observed = _run_probe(labelled_node, pod)
    assert set(observed["open"].values()) == {"EACCES"}, observed


@pytest.mark.parametrize("accelerator", sorted(EXAMPLES))
def test_host_devices_are_refused_when_the_settings_forbid_privilege(
    settings: Settings, accelerator: str
) -> None:
    strict = settings.model_copy(update={"allow_privileged": False})
    refused = render(_example(EXAMPLES[accelerator]), strict)
    assert isinstance(refused, Refusal)
    assert refused.reason == "PrivilegeNotAllowed"
    assert "allowPrivileged" in refused.message


# Device-plugin mode: what each resource's plugin hands the container (container path,
# fake node below the device root), as Intel's GPU/NPU plugins and the NCS2/HDDL plugins do.
PLUGIN_DEVICES = {
    "gpu.intel.com/i915": ("/dev/dri/renderD128", "dri/renderD128"),
    "npu.intel.com/accel": ("/dev/accel/accel0", "accel/accel0"),
    "squat.ai/ncs2": ("/dev/bus/usb/003/002", "bus/usb/003/002"),
    "vpu.intel.com/hddl": ("/dev/ion", "ion"),
}
PLUGIN_EXAMPLES = {
    "intel-gpu": "gpu.yaml",
    "intel-npu": "npu.yaml",
    "ncs2": "ncs2.yaml",
    "hddl": "hddl.yaml",
}
RESTRICTED_NAMESPACE = "devices-restricted"


@pytest.fixture(scope="module")
def device_plugins(labelled_node: Cluster, device_root: Path) -> Iterator[Cluster]:
    e2e = labelled_node
    e2e.plane.kubectl("create", "namespace", RESTRICTED_NAMESPACE, check=False)
    e2e.plane.kubectl(
        "label", "namespace", RESTRICTED_NAMESPACE, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    )  # fmt: skip
    plugins: list[subprocess.Popen[str]] = []
    try:
        for resource, (container_path, relative) in PLUGIN_DEVICES.items():
            plugins.append(
                subprocess.Popen(
                    # On the node: the kubelet's device-plugin directory is the node's own.
                    e2e.node.inside(
                        sys.executable,
                        "-m",
                        "tests.e2e.deviceplugin",
                        resource,
                        f"{container_path}={device_root / relative}",
                        cwd=REPO,
                    ),
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        for plugin in plugins:
            assert plugin.stdout is not None
            line = plugin.stdout.readline()
            assert line.startswith("registered"), line + plugin.stdout.read()

        def advertised() -> bool:
            node = json.loads(e2e.plane.kubectl("get", "node", e2e.node.name, "-o", "json").stdout)
            allocatable = node["status"]["allocatable"]
            return all(allocatable.get(resource) == "1" for resource in PLUGIN_DEVICES)

        wait_until(advertised, 60, "device plugin resources advertised")
        yield e2e
    finally:
        for plugin in plugins:
            plugin.terminate()
        for plugin in plugins:
            try:
                plugin.wait(10)
            except subprocess.TimeoutExpired:
                plugin.kill()
                plugin.wait()


@pytest.mark.parametrize("accelerator", sorted(PLUGIN_EXAMPLES))
def test_device_plugin_mode_gets_the_grant_without_privilege(
    device_plugins: Cluster, settings: Settings, accelerator: str
) -> None:
    body: dict[str, Any] = yaml.safe_load(
        (REPO / "examples" / PLUGIN_EXAMPLES[accelerator]).read_text()
    )
    body["metadata"]["namespace"] = NAMESPACE
    body["spec"]["device"]["accessMode"] = "DevicePlugin"
    rendered = render(InferenceModel.model_validate(body), settings)
    assert isinstance(rendered, Rendered), rendered
    resource = next(iter(rendered.resolution.device_claims)).profile.device_plugin
    assert resource is not None
    container_path, _ = PLUGIN_DEVICES[resource.resource]
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["limits"][resource.resource] == 1
    assert not server["securityContext"].get("privileged")
    # Restricted-level pods go where the real PodSecurity admission enforces "restricted".
    namespace = RESTRICTED_NAMESPACE if rendered.pod_security_level == "restricted" else NAMESPACE
    if accelerator != "hddl":  # HDDL's daemon sockets need root: privileged level
        assert namespace == RESTRICTED_NAMESPACE
    pod = _probe_pod(
        rendered, f"plugin-{accelerator}", settings.runtime_image, None, namespace, container_path
    )
    observed = _run_probe(device_plugins, pod)
    assert observed["open"] == {container_path: observed["open"][container_path]}, observed
    assert observed["open"][container_path] in GRANTED, observed
