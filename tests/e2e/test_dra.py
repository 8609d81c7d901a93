"""Dynamic Resource Allocation on the real node (containerd 2, CDI): a ResourceClaim-mode model
gets the device its claim was allocated, unprivileged, under restricted Pod Security, with no
render group; a claim that gets its pod no device says why in DeviceAccess.

A test DRA driver (``tests.e2e.dradriver``) registers with the kubelet and hands out one fake
render node with a real DRM major (226:128, group 4747, mode 0660, as udev makes them on a
host whose render group is 4747): with no driver behind it, open() gives ENXIO once the device
cgroup grants it and the process may open the file; EPERM (no grant) or EACCES (owner and
group do not let the pod's user in) would mean the route is broken. The server's device
check in the pod says which, and the operator turns it into the ``DeviceAccess`` condition:
``DriverMissing`` (ENXIO) is the answer that proves the route (the server then stops, as it
must for a device it was given and cannot use), and ``status.devices`` names the device.

Then what stands in a claim's way, each its own reason within a minute: a selector or memory
floor no device meets (``NoMatchingDevice``), a selector the scheduler cannot evaluate on the
device (``DeviceSelectorFailed``), a DeviceClass deleted after admission
(``DeviceClassMissing``), the driver stopped (``DRADriverNotRunning``), its CDI spec gone
(``CDIInjectionFailed``). The node has one device: each test's models are deleted, claims and
all, before the next.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubevino_devcluster.controlplane import REPO
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.conftest import Cluster
from tests.e2e.helpers import apply_model, host_path_claim, node_model_directory

pytestmark = pytest.mark.e2e

DRIVER = "gpu.kubevino.test"
DEVICE = "renderd128"
HOST_RENDER_GID = 4747
NAMESPACE = "dra-restricted"
NAME = "arc-claim"
MODELS_CLAIM = "dra-models"
MISSING_CLASS = "gone.kubevino.test"
# Each refusal of a claim reaches DeviceAccess within a minute.
WITHIN = 60
# What the device check would say if the claim route did not grant the node or its ownership.
BROKEN_ROUTE = ("CgroupDenied", "GroupMissing", "DeviceMissing")


class TestDriver:
    """The test DRA driver as a process the tests may stop and start again (the kubelet
    deregisters it when its sockets go, and wipes its ResourceSlice about 30 s later)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, e2e: Cluster, fake: Path) -> None:
        self.e2e = e2e
        self.fake = fake
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def said(self, prefix: str) -> list[str]:
        return [line for line in list(self.lines) if line.startswith(prefix)]

    @property
    def cdi_spec(self) -> Path:
        return self.e2e.node.cdi_directory / f"{DRIVER}.json"

    def start(self) -> None:
        """Run the driver, wait until the kubelet registered it, then publish its slice (the
        kubelet wipes its node's slices when it starts)."""
        registered_before = len(self.said("registered"))
        node = self.e2e.node
        # On the node: its mount namespace holds its own /var/lib/kubelet.
        process = subprocess.Popen(
            node.inside(
                sys.executable, "-m", "tests.e2e.dradriver", DRIVER, node.name,
                str(node.kubelet_root), str(node.cdi_directory),
                f"{DEVICE}=/dev/dri/renderD128={self.fake}", cwd=REPO,
            ),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.process = process

        def collect() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.lines.append(line.strip())

        threading.Thread(target=collect, daemon=True).start()
        wait_until(
            lambda: len(self.said("registered")) > registered_before,
            60,
            f"the kubelet registering {DRIVER}",
        )
        self.e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(_resource_slice(node.name)))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _resource_slice(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-{DRIVER}"},
        "spec": {
            "driver": DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": [
                {
                    "name": DEVICE,
                    "attributes": {"model": {"string": "fake"}},
                    "capacity": {"memory": {"value": "1Gi"}},
                }
            ],
        },
    }


def _device_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
    }


@pytest.fixture(scope="module")
def dra_driver(operator_installed: Cluster) -> Iterator[TestDriver]:
    e2e = operator_installed
    fake = e2e.directory / "dra-dev" / "renderD128"
    fake.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(fake, stat.S_IFCHR | 0o660, os.makedev(226, 128))
    os.chown(fake, 0, HOST_RENDER_GID)
    fake.chmod(0o660)
    driver = TestDriver(e2e, fake)
    try:
        driver.start()
        e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(_device_class(DRIVER)))
        e2e.plane.kubectl("create", "namespace", NAMESPACE, check=False)
        e2e.plane.kubectl(
            "label", "namespace", NAMESPACE, "--overwrite",
            "pod-security.kubernetes.io/enforce=restricted",
        )  # fmt: skip
        # Restricted Pod Security admits no hostPath volume in the pod (a PersistentVolume may
        # still be one): the model comes through a claim.
        models = node_model_directory(e2e.directory / "dra-models")
        host_path_claim(e2e.plane, NAMESPACE, MODELS_CLAIM, models, "ReadOnlyMany")
        yield driver
    finally:
        e2e.plane.kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False)
        e2e.plane.kubectl("delete", "persistentvolume", f"{NAMESPACE}-{MODELS_CLAIM}", check=False)
        e2e.plane.kubectl("delete", "resourceslice", f"{e2e.node.name}-{DRIVER}", check=False)
        e2e.plane.kubectl("delete", "deviceclass", DRIVER, MISSING_CLASS, check=False)
        driver.stop()
        fake.unlink(missing_ok=True)


def _claim_model(e2e: Cluster, name: str, **claim: Any) -> None:
    replicas = claim.pop("replicas", 1)
    apply_model(e2e.plane, name, NAMESPACE, {
        "model": {"name": "classifier", "source": {"pvc": {"claimName": MODELS_CLAIM}}},
        "device": {"targetDevice": "AUTO:GPU,CPU", "accessMode": "ResourceClaim",
                   "resourceClaim": {"deviceClassName": DRIVER, **claim}},
        "serving": {"image": e2e.images["runtime"], "replicas": replicas},
    })  # fmt: skip


def _device_access(e2e: Cluster, name: str) -> dict[str, Any]:
    return condition(get(e2e.plane, "inferencemodel", name, NAMESPACE), "DeviceAccess")


def _wait_for_device_reason(
    e2e: Cluster, driver: TestDriver, name: str, reasons: tuple[str, ...], within: float
) -> dict[str, Any]:
    def said() -> dict[str, Any] | None:
        found = _device_access(e2e, name)
        return found if found.get("reason") in reasons else None

    try:
        return wait_until(said, within, f"DeviceAccess of {name} to be one of {reasons}")
    except AssertionError:
        print(e2e.plane.kubectl("describe", "inferencemodel,pods,resourceclaims", "-n",
                                NAMESPACE).stdout)  # fmt: skip
        print("\n".join(driver.lines), e2e.node.log("kubelet")[-3000:])
        raise


def _leftovers(e2e: Cluster) -> list[str]:
    """Pods and claims still in the test namespace (only the tests' models make them)."""
    listed = e2e.plane.kubectl("get", "pods,resourceclaims", "-n", NAMESPACE, "-o", "json")
    return [item["metadata"]["name"] for item in json.loads(listed.stdout)["items"]]


@pytest.fixture(autouse=True)
def one_model_at_a_time(dra_driver: TestDriver) -> Iterator[None]:
    """Each test's models are gone with their claims before the next: the node's one device
    is free again."""
    yield
    e2e = dra_driver.e2e
    e2e.plane.kubectl("delete", "inferencemodels", "--all", "-n", NAMESPACE, "--wait=true")
    wait_until(lambda: not _leftovers(e2e), 120, "the models' pods and claims gone")


def test_a_claim_model_gets_its_allocated_device_owned_by_its_own_user(
    operator_installed: Cluster, dra_driver: TestDriver
) -> None:
    e2e = operator_installed
    _claim_model(e2e, NAME)
    verdict = _wait_for_device_reason(e2e, dra_driver, NAME, ("DriverMissing", *BROKEN_ROUTE), 150)
    # Granted (the device cgroup let it through) and openable by the pod's own user (no
    # EACCES although the host's node belongs to group 4747): ENXIO, no driver behind it.
    assert verdict["reason"] == "DriverMissing", verdict
    assert "/dev/dri/renderD128 is granted but no kernel driver answers" in verdict["message"]
    assert "(ENXIO)" in verdict["message"]
    (claim,) = json.loads(
        e2e.plane.kubectl("get", "resourceclaims", "-n", NAMESPACE, "-o", "json").stdout
    )["items"]
    (result,) = claim["status"]["allocation"]["devices"]["results"]
    assert (result["driver"], result["pool"], result["device"], result["request"]) == (
        DRIVER, e2e.node.name, DEVICE, "intel-gpu",
    )  # fmt: skip
    assert dra_driver.said(f"prepared {claim['metadata']['uid']}")
    # The verdict and the status name the device the claim was allocated.
    assert f"{DRIVER} device {e2e.node.name}/{DEVICE}" in verdict["message"]
    (pod_name,) = (
        item["metadata"]["name"]
        for item in json.loads(
            e2e.plane.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout
        )["items"]
    )
    model = get(e2e.plane, "inferencemodel", NAME, NAMESPACE)
    assert model is not None
    assert model["status"]["devices"] == [
        {"pod": pod_name, "node": e2e.node.name, "claim": claim["metadata"]["name"],
         "request": "intel-gpu", "driver": DRIVER, "pool": e2e.node.name, "device": DEVICE}
    ]  # fmt: skip
    deployment = get(e2e.plane, "deployment", NAME, NAMESPACE)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    assert "supplementalGroups" not in pod["securityContext"]  # no render GID in this mode
    assert pod["resourceClaims"] == [
        {"name": "devices", "resourceClaimTemplateName": f"{NAME}-devices"}
    ]

    e2e.plane.kubectl("delete", "inferencemodel", NAME, "-n", NAMESPACE, "--wait=true")
    wait_until(
        lambda: get(e2e.plane, "resourceclaimtemplate", f"{NAME}-devices", NAMESPACE) is None,
        60,
        "the claim template gone with the model",
    )
    wait_until(
        lambda: dra_driver.said(f"unprepared {claim['metadata']['uid']}"),
        90,
        "the kubelet unpreparing the claim",
    )


def test_a_selector_or_a_memory_floor_that_no_device_meets_is_no_matching_device(
    operator_installed: Cluster, dra_driver: TestDriver
) -> None:
    e2e = operator_installed
    nothing = f'device.attributes["{DRIVER}"].model == "no-such-model"'
    _claim_model(e2e, "no-such-model", selectors=[nothing])
    _claim_model(e2e, "too-little-memory", minMemory="2Gi")  # the device has 1Gi
    # The device publishes no "family": the scheduler's CEL stops on it, a reason of its own.
    _claim_model(e2e, "no-family", selectors=[f'device.attributes["{DRIVER}"].family == "Arc"'])
    for name in ("no-such-model", "too-little-memory"):
        verdict = _wait_for_device_reason(e2e, dra_driver, name, ("NoMatchingDevice",), WITHIN)
        assert "cannot allocate all claims" in verdict["message"], verdict
        assert f"Fix: no free device of DeviceClass {DRIVER} with" in verdict["message"]
        ready = condition(get(e2e.plane, "inferencemodel", name, NAMESPACE), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "NoMatchingDevice")
    assert nothing in _device_access(e2e, "no-such-model")["message"]
    assert "minMemory 2Gi" in _device_access(e2e, "too-little-memory")["message"]
    failed = _wait_for_device_reason(
        e2e, dra_driver, "no-family", ("DeviceSelectorFailed",), WITHIN
    )
    assert "(no such key: family)" in failed["message"], failed


def test_a_device_class_deleted_after_admission_is_device_class_missing(
    operator_installed: Cluster, dra_driver: TestDriver
) -> None:
    e2e = operator_installed
    e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(_device_class(MISSING_CLASS)))
    name = "class-goes"
    _claim_model(e2e, name, deviceClassName=MISSING_CLASS, replicas=0)
    wait_until(
        lambda: get(e2e.plane, "resourceclaimtemplate", f"{name}-devices", NAMESPACE),
        60,
        "the model admitted with its class",
    )
    e2e.plane.kubectl("delete", "deviceclass", MISSING_CLASS)
    _claim_model(e2e, name, deviceClassName=MISSING_CLASS, replicas=1)
    verdict = _wait_for_device_reason(e2e, dra_driver, name, ("DeviceClassMissing",), WITHIN)
    assert f"DeviceClass {MISSING_CLASS}" in verdict["message"], verdict


def test_a_stopped_driver_is_dra_driver_not_running_until_it_runs_again(
    operator_installed: Cluster, dra_driver: TestDriver
) -> None:
    e2e = operator_installed
    name = "driver-stopped"
    dra_driver.stop()
    try:
        _claim_model(e2e, name)
        verdict = _wait_for_device_reason(e2e, dra_driver, name, ("DRADriverNotRunning",), WITHIN)
        assert DRIVER in verdict["message"] and "Fix:" in verdict["message"], verdict
    finally:
        dra_driver.start()
    # Running again, the driver prepares the claim and the pod's device check has its say.
    _wait_for_device_reason(e2e, dra_driver, name, ("DriverMissing",), 150)


def test_a_device_the_runtime_cannot_inject_is_cdi_injection_failed(
    operator_installed: Cluster, dra_driver: TestDriver
) -> None:
    e2e = operator_installed
    name = "no-cdi-spec"
    spec = dra_driver.cdi_spec.read_text()
    dra_driver.cdi_spec.unlink()  # containerd re-reads the CDI specs at each container create
    try:
        _claim_model(e2e, name)
        verdict = _wait_for_device_reason(e2e, dra_driver, name, ("CDIInjectionFailed",), WITHIN)
        assert f"kubevino.test/gpu={DEVICE}" in verdict["message"], verdict
    finally:
        dra_driver.cdi_spec.write_text(spec)
