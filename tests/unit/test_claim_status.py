"""ResourceClaim mode in the status: which devices the claims got, and why a claim gives its pod
none, each cause with its own DeviceAccess reason and fix.

The pods, claims, Events and messages below have the shapes a real 1.34 API server, scheduler,
kubelet and containerd 2.4 produced in the node tier (tests/e2e/test_dra.py).
"""

from __future__ import annotations

from typing import Any

from kubevino_operator.claimhealth import KnownClaims, allocated_devices
from kubevino_operator.devicestatus import device_access_state
from kubevino_operator.discovery import DraFacts, Inventory
from kubevino_operator.podhealth import diagnose, diagnose_events
from kubevino_operator.render import Rendered, render
from kubevino_operator.resolve import Refusal
from kubevino_operator.settings import Settings
from kubevino_operator.status import build_status
from tests.unit.builders import model, settings

DRIVER = "gpu.kubevino.test"
NODE = "kv-node"
SETTINGS = settings()
DRIVER_CLASS = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "DeviceClass",
    "metadata": {"name": DRIVER},
    "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{DRIVER}"'}}]},
}
SLICE: dict[str, Any] = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "ResourceSlice",
    "metadata": {"name": f"{NODE}-{DRIVER}"},
    "spec": {
        "driver": DRIVER,
        "nodeName": NODE,
        "pool": {"generation": 1, "name": NODE, "resourceSliceCount": 1},
        "devices": [
            {
                "name": "renderd128",
                "attributes": {"model": {"string": "fake"}},
                "capacity": {"memory": {"value": "1Gi"}},
            }
        ],
    },
}
PUBLISHED = Inventory(dra=DraFacts.from_objects([DRIVER_CLASS], [SLICE]))
# What the scheduler's DynamicResources plugin said (PodScheduled=False, Unschedulable).
NO_ALLOCATION = (
    "0/1 nodes are available: 1 cannot allocate all claims. still not schedulable, "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)
CLASS_GONE = (
    "0/1 nodes are available: request intel-gpu: device class gone.kubevino.test does not "
    "exist. no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is "
    "not helpful for scheduling."
)
# PodScheduled=False with reason SchedulerError: a selector naming what the device lacks.
SELECTOR_ERROR = (
    'running "DynamicResources" filter plugin: claim dra-restricted/arc-7d9c-x2x-devices-ab: '
    "selector #0: CEL runtime error: no such key: family"
)
# The same failure as v1.37's scheduler words it: the device named, a hint appended.
SELECTOR_ERROR_V137 = (
    'running "DynamicResources" filter plugin: claim dra-restricted/arc-7d9c-x2x-devices-ab: '
    "selector #0 on device gpu.kubevino.test/kv-node/renderd128: CEL runtime error: no such "
    "key: family. consider using CEL optional chaining (.? followed by orValue()) or guarding "
    "the check with has() for optional fields"
)
NOT_REGISTERED = (
    "Failed to prepare dynamic resources: prepare dynamic resources: DRA driver "
    f"{DRIVER} is not registered"
)
# The same, in the seconds before the kubelet noticed the plugin's socket went.
SOCKET_GONE = (
    "Failed to prepare dynamic resources: prepare dynamic resources: NodePrepareResources: rpc "
    'error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
    f"dial unix /var/lib/kubelet/plugins/{DRIVER}/dra.sock: connect: no such file or "
    'directory"'
)
PREPARE_FAILED = "FailedPrepareDynamicResources"
CDI_UNRESOLVABLE = (
    "failed to create containerd container: CDI device injection failed: unresolvable CDI "
    "devices kubevino.test/gpu=renderd128"
)


def _claim_model(name: str = "arc", **claim: Any) -> Any:
    return model(
        name,
        device={
            "targetDevice": "AUTO:GPU,CPU",
            "accessMode": "ResourceClaim",
            "resourceClaim": {"deviceClassName": DRIVER, **claim},
        },
    )


def _rendered(subject: Any, inventory: Inventory = PUBLISHED) -> Rendered:
    result = render(subject, SETTINGS, inventory)
    assert isinstance(result, Rendered), result
    return result


def _pod(name: str = "arc-7d9c-x2x", node: str = NODE, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": node},
        "status": {
            "phase": "Pending",
            "resourceClaimStatuses": [
                {"name": "devices", "resourceClaimName": f"{name}-devices-ab"}
            ],
            **status,
        },
    }


def _claim(pod: str = "arc-7d9c-x2x", device: str | None = "renderd128") -> dict[str, Any]:
    claim: dict[str, Any] = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": f"{pod}-devices-ab", "namespace": "ml"},
        "spec": {"devices": {"requests": [{"name": "intel-gpu"}]}},
        "status": {},
    }
    if device is not None:
        claim["status"] = {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "intel-gpu", "driver": DRIVER, "pool": NODE, "device": device}
                    ]
                },
                "nodeSelector": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In",
                                          "values": [NODE]}]}
                    ]
                },
            },
            "reservedFor": [{"name": pod, "resource": "pods", "uid": f"uid-{pod}"}],
        }  # fmt: skip
    return claim


def _unscheduled(message: str, reason: str = "Unschedulable") -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "observedGeneration": 1,
        "lastProbeTime": None,
        "lastTransitionTime": "2026-11-29T16:35:36Z",
    }
    return _pod(node="", conditions=[condition])


def _warning(pod: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{pod}.1", "creationTimestamp": "2026-11-29T16:40:00Z"},
        "involvedObject": {"kind": "Pod", "name": pod, "uid": f"uid-{pod}"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "kubelet", "host": NODE},
        "lastTimestamp": "2026-11-29T16:40:00Z",
    }


def _device_access(rendered: Rendered, problem: Any, devices: Any = ()) -> Any:
    return device_access_state(rendered, problem, False, SETTINGS, devices)


# --- which devices ------------------------------------------------------------------------


def test_status_names_each_pods_allocated_device_from_its_claim() -> None:
    pods = [_pod("arc-a"), _pod("arc-b"), _pod("arc-c", node="")]
    leaving = _pod("arc-old")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-29T16:41:00Z"
    claims = {
        c["metadata"]["name"]: c
        for c in (_claim("arc-a"), _claim("arc-b", "renderd129"), _claim("arc-c", None))
    }
    claims["arc-old-devices-ab"] = _claim("arc-old")
    assert allocated_devices([*pods, leaving], claims) == [
        {"pod": "arc-a", "node": NODE, "claim": "arc-a-devices-ab", "request": "intel-gpu",
         "driver": DRIVER, "pool": NODE, "device": "renderd128"},
        {"pod": "arc-b", "node": NODE, "claim": "arc-b-devices-ab", "request": "intel-gpu",
         "driver": DRIVER, "pool": NODE, "device": "renderd129"},
    ]  # fmt: skip


def test_a_claim_the_user_names_is_read_from_the_pod_spec() -> None:
    pod = {
        "metadata": {"name": "arc-a"},
        "spec": {"nodeName": NODE, "resourceClaims": [{"name": "devices",
                                                       "resourceClaimName": "team-gpu"}]},
        "status": {},
    }  # fmt: skip
    shared = _claim("arc-a")
    (entry,) = allocated_devices([pod], {"team-gpu": shared})
    assert (entry["claim"], entry["device"]) == ("team-gpu", "renderd128")


def test_claims_made_for_a_pod_are_read_until_allocated_and_a_shared_one_every_time() -> None:
    known = KnownClaims()
    key = ("ml", "arc")
    pods = [_pod("arc-a")]
    assert known.to_read(key, pods) == ["arc-a-devices-ab"]
    known.record(key, pods, {"arc-a-devices-ab": _claim("arc-a", None)})
    assert known.to_read(key, pods) == ["arc-a-devices-ab"]  # not allocated yet: again
    kept = known.record(key, pods, {"arc-a-devices-ab": _claim("arc-a")})
    assert allocated_devices(pods, kept)[0]["device"] == "renderd128"
    assert known.to_read(key, pods) == []  # allocated for the pod's life: never again
    shared = {"metadata": {"name": "arc-b"}, "spec": {"nodeName": NODE, "resourceClaims": [
        {"name": "devices", "resourceClaimName": "team-gpu"}]}, "status": {}}  # fmt: skip
    known.record(key, [shared], {"team-gpu": _claim("arc-b")})
    assert known.to_read(key, [shared]) == ["team-gpu"]  # may be reallocated: always read
    assert known.record(key, [], {}) == {}  # no pod uses them any more: forgotten


def test_a_runtime_verdict_in_a_claim_pod_names_the_allocated_device_and_the_cdi_fix() -> None:
    paragraph = (
        "target_device AUTO:GPU,CPU cannot run in this container: GPU: /dev/dri/renderD128 is "
        "granted but no kernel driver answers behind it (ENXIO): the node's driver is not "
        "loaded or the device is gone."
    )
    crashed = _pod(
        "arc-a",
        phase="Running",
        containerStatuses=[
            {
                "name": "server",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {
                        "exitCode": 3,
                        "message": f"DeviceAccess=DriverMissing: {paragraph}",
                    }
                },
                "restartCount": 1,
            }
        ],
    )
    devices = allocated_devices([crashed], {"arc-a-devices-ab": _claim("arc-a")})
    state = _device_access(_rendered(_claim_model()), diagnose([crashed]), devices)
    assert (state.status, state.reason) == ("False", "DriverMissing")
    assert f"Its claim was allocated {DRIVER} device {NODE}/renderd128." in state.message
    group = diagnose([_pod("arc-a", containerStatuses=[{
        "name": "server", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 3, "message": (
            "DeviceAccess=GroupMissing: GPU: /dev/dri/renderD128 (group 4747, mode 0660) cannot "
            "be opened by uid 1000 in groups 1000 (EACCES): the process is not in group 4747.")}},
    }])])  # fmt: skip
    fix = _device_access(_rendered(_claim_model()), group, devices).message
    assert "CDI spec" in fix and "renderGroupId" not in fix  # no render group in this mode


def test_serving_claim_pods_say_which_devices_they_use() -> None:
    devices = allocated_devices([_pod("arc-a")], {"arc-a-devices-ab": _claim("arc-a")})
    state = device_access_state(_rendered(_claim_model()), None, True, SETTINGS, devices)
    assert (state.status, state.reason) == ("True", "DevicesUsable")
    assert f"allocated {DRIVER} device {NODE}/renderd128" in state.message
    many = [{**devices[0], "pod": f"arc-{n}", "device": f"renderd{n}"} for n in range(128, 136)]
    state = device_access_state(_rendered(_claim_model()), None, True, SETTINGS, many)
    assert state.message.endswith(f"{DRIVER} device {NODE}/renderd131 and 4 more)")


def test_status_devices_come_and_go_with_resource_claim_mode() -> None:
    claim_pods = allocated_devices([_pod("arc-a")], {"arc-a-devices-ab": _claim("arc-a")})
    status = build_status(
        generation=1,
        previous=None,
        now="2026-11-29T16:40:00Z",
        rendered=_rendered(_claim_model()),
        deployment=None,
        settings=SETTINGS,
        devices=claim_pods,
    )
    assert status["devices"] == claim_pods
    plugin = render(model("arc", device={"targetDevice": "GPU"}), settings(renderGroupId=110))
    assert isinstance(plugin, Rendered)
    after = build_status(
        generation=2,
        previous=status,
        now="2026-11-29T16:41:00Z",
        rendered=plugin,
        deployment=None,
        settings=Settings(),
    )
    assert after["devices"] is None  # a merge patch removes it


# --- why a claim gives no device ----------------------------------------------------------


def test_a_selector_or_memory_floor_no_device_meets_is_no_matching_device() -> None:
    problem = diagnose([_unscheduled(NO_ALLOCATION)])
    assert problem is not None and problem.condition == "DeviceAccess"
    assert problem.reason == "NoMatchingDevice" and not problem.transient
    selective = _claim_model(selectors=[f'device.attributes["{DRIVER}"].model == "b580"'])
    state = _device_access(_rendered(selective), problem)
    assert (state.status, state.reason) == ("False", "NoMatchingDevice")
    assert "cannot allocate all claims" in state.message
    assert f'DeviceClass {DRIVER} with selectors device.attributes["{DRIVER}"].model' in (
        state.message
    )
    assert "Fix: no free device" in state.message and "kubectl get resourceslices" in state.message
    floor = _device_access(_rendered(_claim_model(minMemory="2Gi")), problem)
    assert "minMemory 2Gi" in floor.message


def test_a_selector_that_fails_on_a_published_device_is_device_selector_failed() -> None:
    problem = diagnose([_unscheduled(SELECTOR_ERROR, reason="SchedulerError")])
    assert problem is not None and problem.reason == "DeviceSelectorFailed"
    selective = _claim_model(selectors=[f'device.attributes["{DRIVER}"].family == "Arc"'])
    state = _device_access(_rendered(selective), problem)
    assert (state.status, state.reason) == ("False", "DeviceSelectorFailed")
    assert "fails on a published device (no such key: family)" in state.message
    newer = diagnose([_unscheduled(SELECTOR_ERROR_V137, reason="SchedulerError")])
    assert newer is not None and newer.reason == "DeviceSelectorFailed"
    assert "fails on a published device (no such key: family)" in (
        _device_access(_rendered(selective), newer).message
    )
    other = diagnose([_unscheduled("binding rejected: etcd timeout", reason="SchedulerError")])
    assert other is None  # a scheduler error of another kind is not the claim's


def test_ready_says_the_claim_problem_rather_than_waiting_for_a_node() -> None:
    status = build_status(
        generation=1,
        previous=None,
        now="2026-11-29T16:40:00Z",
        rendered=_rendered(_claim_model()),
        deployment={"metadata": {"generation": 1}, "spec": {"replicas": 1},
                    "status": {"observedGeneration": 1}},
        pod_problem=diagnose([_unscheduled(NO_ALLOCATION)]),
        settings=SETTINGS,
    )  # fmt: skip
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoMatchingDevice")


def test_a_device_class_gone_after_admission_is_device_class_missing() -> None:
    problem = diagnose([_unscheduled(CLASS_GONE)])
    assert problem is not None and problem.reason == "DeviceClassMissing"
    state = _device_access(_rendered(_claim_model()), problem)
    assert (state.status, state.reason) == ("False", "DeviceClassMissing")
    assert "Fix: DeviceClass gone.kubevino.test does not exist" in state.message
    # Once the operator's own read of the classes misses it, the render refuses: same reason.
    without = Inventory(dra=DraFacts.from_objects([], [SLICE]))
    refused = render(_claim_model(deviceClassName="gone.kubevino.test"), SETTINGS, without)
    assert isinstance(refused, Refusal) and refused.reason == "DeviceClassMissing"
    state = device_access_state(refused, None, False, SETTINGS)
    assert (state.status, state.reason) == ("False", "DeviceClassMissing")


def test_a_driver_the_kubelet_has_not_registered_is_dra_driver_not_running() -> None:
    pods = [_pod()]
    name = pods[0]["metadata"]["name"]
    problem = diagnose_events(pods, [_warning(name, PREPARE_FAILED, NOT_REGISTERED)])
    assert problem is not None and problem.reason == "DRADriverNotRunning"
    assert problem.node == NODE and problem.subject == DRIVER
    state = _device_access(_rendered(_claim_model()), problem)
    assert (state.status, state.reason) == ("False", "DRADriverNotRunning")
    assert "is not registered" in state.message
    dialing = diagnose_events(pods, [_warning(name, PREPARE_FAILED, SOCKET_GONE)])
    assert dialing is not None and dialing.reason == "DRADriverNotRunning"
    assert f"Fix: start the DRA driver {DRIVER} on node {NODE}" in state.message
    driver_said = "NodePrepareResources failed for ResourceClaim arc-a: no such device"
    refused = diagnose_events(pods, [_warning(name, PREPARE_FAILED, driver_said)])
    assert refused is not None and refused.reason == "ClaimPrepareFailed"


def test_a_cdi_device_the_runtime_cannot_resolve_is_cdi_injection_failed() -> None:
    pod = _pod(containerStatuses=[{
        "name": "server", "state": {"waiting": {"reason": "CreateContainerError",
                                                "message": CDI_UNRESOLVABLE}},
    }])  # fmt: skip
    problem = diagnose([pod])
    assert problem is not None and problem.reason == "CDIInjectionFailed"
    state = _device_access(_rendered(_claim_model()), problem)
    assert "unresolvable CDI devices kubevino.test/gpu=renderd128" in state.message
    assert "cdi_spec_dirs" in state.message
    other = _pod(containerStatuses=[{
        "name": "server", "state": {"waiting": {"reason": "CreateContainerError",
                                                "message": "no such image"}},
    }])  # fmt: skip
    ordinary = diagnose([other])
    assert ordinary is not None and ordinary.reason == "ContainerStartFailed"


# --- ResourceSlices, not labels, say where the devices are -------------------------------


def test_a_class_names_its_driver_and_slices_say_where_it_publishes_devices() -> None:
    facts = DraFacts.from_objects([DRIVER_CLASS], [SLICE])
    assert facts.driver_of(DRIVER) == DRIVER and facts.driver_of("gpu.intel.com") is None
    assert facts.nodes_publishing(DRIVER) == (NODE,)
    empty = {**SLICE, "spec": {**SLICE["spec"], "devices": []}}
    assert DraFacts.from_objects([DRIVER_CLASS], [empty]).nodes_publishing(DRIVER) == ()


def test_no_slice_of_the_classs_driver_is_dra_driver_not_running() -> None:
    nowhere = Inventory(dra=DraFacts.from_objects([DRIVER_CLASS], []))
    state = device_access_state(_rendered(_claim_model(), nowhere), None, False, SETTINGS)
    assert (state.status, state.reason) == ("False", "DRADriverNotRunning")
    assert f"no node publishes a ResourceSlice of DRA driver {DRIVER}" in state.message
    empty = {**SLICE, "spec": {**SLICE["spec"], "devices": []}}
    idle = Inventory(dra=DraFacts.from_objects([DRIVER_CLASS], [empty]))
    state = device_access_state(_rendered(_claim_model(), idle), None, False, SETTINGS)
    assert (state.status, state.reason) == ("False", "DeviceMissing")
    published = device_access_state(_rendered(_claim_model()), None, False, SETTINGS)
    assert (published.status, published.reason) == ("Unknown", "Pending")


def test_with_slices_read_node_labels_do_not_decide_a_claim_models_devices() -> None:
    discovering = settings(nodeDiscovery=True)
    unlabelled = Inventory((), DraFacts.from_objects([DRIVER_CLASS], [SLICE]))
    result = render(_claim_model(), discovering, unlabelled)
    assert isinstance(result, Rendered)
    assert result.resolution.undiscovered == () and result.resolution.dra_shortfalls == ()
