"""Reading why a model's pods do not serve."""

from __future__ import annotations

from typing import Any

from kubevino_operator.podhealth import (
    EVENT_PODS_LIMIT,
    MESSAGE_LIMIT,
    diagnose,
    diagnose_events,
    pods_worth_events,
    warning_events_selector,
)


def _pod(name: str = "m-1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "server", "image": "registry/runtime:1", **fields}


def test_healthy_or_starting_pods_are_no_problem() -> None:
    running = _container(state={"running": {}}, ready=False)
    creating = _container(state={"waiting": {"reason": "ContainerCreating"}})
    assert (
        diagnose([_pod(containerStatuses=[running]), _pod("m-2", containerStatuses=[creating])])
        is None
    )
    assert diagnose([]) is None


def test_an_image_that_cannot_be_pulled_is_named() -> None:
    waiting = {"waiting": {"reason": "ErrImagePull", "message": "dial tcp: no such host"}}
    problem = diagnose([_pod(containerStatuses=[_container(state=waiting)])])
    assert problem is not None and problem.reason == "ImagePullFailed"
    assert "registry/runtime:1" in problem.message and "no such host" in problem.message


def test_a_crashing_server_reports_its_termination_message() -> None:
    crashed = _container(
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        lastState={"terminated": {"exitCode": 1, "message": "model m: no version in /models"}},
        restartCount=3,
    )
    problem = diagnose([_pod(containerStatuses=[crashed])])
    assert problem is not None and problem.reason == "ServerCrashing"
    assert "no version in /models" in problem.message and "3 restarts" in problem.message


def test_init_containers_come_first_and_clean_exits_are_fine() -> None:
    fetch = _container(name="fetch-model", state={"terminated": {"exitCode": 0}})
    assert diagnose([_pod(initContainerStatuses=[fetch])]) is None
    failed = _container(state={"terminated": {"exitCode": 2, "reason": "Error"}})
    problem = diagnose([_pod(initContainerStatuses=[failed])])
    assert problem is not None and problem.reason == "ServerCrashing" and "Error" in problem.message


def test_an_unschedulable_pod_says_what_no_node_has() -> None:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient gpu.intel.com/i915.",
    }
    problem = diagnose([_pod(conditions=[condition])])
    assert problem is not None and problem.reason == "Unschedulable" and problem.transient
    assert "gpu.intel.com/i915" in problem.message


def test_terminating_pods_are_ignored_and_long_messages_are_cut() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "x" * 5000}}
    gone = _pod(containerStatuses=[_container(state=waiting)])
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert diagnose([gone]) is None
    problem = diagnose([_pod(containerStatuses=[_container(state=waiting)])])
    assert problem is not None and len(problem.message) <= MESSAGE_LIMIT


def test_a_volume_that_does_not_mount_is_read_from_the_kubelets_warning() -> None:
    pods = [_pod("m-1", phase="Pending")]
    events = [
        {
            "metadata": {"creationTimestamp": "2026-01-01T00:00:01Z"},
            "involvedObject": {"kind": "Pod", "name": "m-1"},
            "reason": "FailedMount",
            "message": 'MountVolume.SetUp failed for volume "model": hostPath type check failed',
            "lastTimestamp": "2026-01-01T00:00:02Z",
        },
        {
            "metadata": {"creationTimestamp": "2026-01-01T00:00:03Z"},
            "involvedObject": {"kind": "Pod", "name": "someone-else"},
            "reason": "FailedMount",
            "message": "not ours",
        },
    ]
    problem = diagnose_events(pods, events)
    assert problem is not None and problem.reason == "VolumeMountFailed"
    assert "hostPath type check failed" in problem.message and "pod m-1" in problem.message
    assert diagnose_events(pods, events[1:]) is None


def test_events_are_read_only_for_pods_placed_on_a_node_that_run_nothing_yet() -> None:
    def placed(name: str, phase: str, node: str = "node-a") -> dict[str, Any]:
        pod = _pod(name, phase=phase)
        pod["metadata"]["uid"] = f"uid-{name}"
        pod["spec"] = {"nodeName": node} if node else {}
        return pod

    mounting = placed("m-1", "Pending")
    unscheduled = placed("m-2", "Pending", node="")
    running = placed("m-3", "Running")
    leaving = placed("m-4", "Pending")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pods_worth_events([running, unscheduled, mounting, leaving]) == [mounting]
    assert warning_events_selector(mounting) == "type=Warning,involvedObject.uid=uid-m-1"
    many = [placed(f"m-{i}", "Pending") for i in range(10)]
    assert len(pods_worth_events(many)) == EVENT_PODS_LIMIT
