"""Dynamic Resource Allocation on the real node (containerd 2, CDI): a ResourceClaim-mode model
gets the device its claim was allocated, unprivileged, under restricted Pod Security, with no
render group.

A test DRA driver (``tests.e2e.dradriver``) registers with the kubelet and hands out one fake
render node with a real DRM major (226:128, group 4747, mode 0660, as udev makes them on a
host whose render group is 4747): with no driver behind it, open() gives ENXIO once the device
cgroup grants it and the process may open the file; EPERM (no grant) or EACCES (owner and
group do not let the pod's user in) would mean the route is broken. The server's device
check in the pod says which, and the operator turns it into the ``DeviceAccess`` condition:
``DriverMissing`` (ENXIO) is the answer that proves the route (the server then stops, as it
must for a device it was given and cannot use).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
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
# What the device check would say if the claim route did not grant the node or its ownership.
BROKEN_ROUTE = ("CgroupDenied", "GroupMissing", "DeviceMissing")


@dataclass
class RunningDriver:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def said(self, prefix: str) -> list[str]:
        return [line for line in list(self.lines) if line.startswith(prefix)]


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


DEVICE_CLASS = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "DeviceClass",
    "metadata": {"name": DRIVER},
    "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
}


@pytest.fixture(scope="module")
def dra_driver(operator_installed: Cluster) -> Iterator[RunningDriver]:
    e2e = operator_installed
    fake = e2e.directory / "dra-dev" / "renderD128"
    fake.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(fake, stat.S_IFCHR | 0o660, os.makedev(226, 128))
    os.chown(fake, 0, HOST_RENDER_GID)
    fake.chmod(0o660)
    process = subprocess.Popen(
        e2e.node.inside(
            sys.executable, "-m", "tests.e2e.dradriver", DRIVER, e2e.node.name,
            str(e2e.node.kubelet_root), str(e2e.node.cdi_directory),
            f"{DEVICE}=/dev/dri/renderD128={fake}", cwd=REPO,
        ),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    driver = RunningDriver(process)

    def collect() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            driver.lines.append(line.strip())

    threading.Thread(target=collect, daemon=True).start()
    try:
        wait_until(lambda: driver.said("registered"), 60, f"the kubelet registering {DRIVER}")
        # After registration: the kubelet wipes its node's slices when it starts.
        for obj in (DEVICE_CLASS, _resource_slice(e2e.node.name)):
            e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
        e2e.plane.kubectl("create", "namespace", NAMESPACE, check=False)
        e2e.plane.kubectl(
            "label", "namespace", NAMESPACE, "--overwrite",
            "pod-security.kubernetes.io/enforce=restricted",
        )  # fmt: skip
        yield driver
    finally:
        e2e.plane.kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False)
        e2e.plane.kubectl("delete", "persistentvolume", f"{NAMESPACE}-{MODELS_CLAIM}", check=False)
        e2e.plane.kubectl("delete", "resourceslice", f"{e2e.node.name}-{DRIVER}", check=False)
        e2e.plane.kubectl("delete", "deviceclass", DRIVER, check=False)
        process.terminate()
        process.wait(10)
        fake.unlink(missing_ok=True)


def test_a_claim_model_gets_its_allocated_device_owned_by_its_own_user(
    operator_installed: Cluster, dra_driver: RunningDriver
) -> None:
    e2e = operator_installed
    # Restricted Pod Security admits no hostPath volume in the pod (a PersistentVolume may
    # still be one): the model comes through a claim.
    models = node_model_directory(e2e.directory / "dra-models")
    host_path_claim(e2e.plane, NAMESPACE, MODELS_CLAIM, models, "ReadOnlyMany")
    apply_model(e2e.plane, NAME, NAMESPACE, {
        "model": {"name": "classifier", "source": {"pvc": {"claimName": MODELS_CLAIM}}},
        "device": {"targetDevice": "AUTO:GPU,CPU", "accessMode": "ResourceClaim",
                   "resourceClaim": {"deviceClassName": DRIVER}},
        "serving": {"image": e2e.images["runtime"]},
    })  # fmt: skip

    def device_access() -> dict[str, Any] | None:
        found = condition(get(e2e.plane, "inferencemodel", NAME, NAMESPACE), "DeviceAccess")
        return found if found.get("reason") in ("DriverMissing", *BROKEN_ROUTE) else None

    try:
        verdict = wait_until(device_access, 150, "the pod's device check in DeviceAccess")
    except AssertionError:
        print(e2e.plane.kubectl("describe", "inferencemodel,pods", "-n", NAMESPACE).stdout)
        print("\n".join(dra_driver.lines), e2e.node.log("kubelet")[-3000:])
        raise
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
