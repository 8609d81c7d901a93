"""Why a model's pods do not serve, read off the pods themselves.

A Deployment only counts available pods: an image that cannot be pulled, a server that
exits at start or a pod no node can take all look like "0/1 available" there. The pods say
which it is; this turns that into one reason and one message a user can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubevino_operator.claimhealth import (
    PREPARE_FAILED_EVENT,
    ClaimProblem,
    injection_problem,
    prepare_problem,
    scheduling_problem,
)

MESSAGE_LIMIT = 1200

_IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_START_FAILED = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# What the runtime's device check can say (kubevino_runtime.deviceaccess.Access, less Usable).
DEVICE_ACCESS_REASONS = frozenset(
    {"DeviceMissing", "GroupMissing", "CgroupDenied", "DriverMissing"}
)
# What kubevino-fetch says (kubevino_runtime.fetch): success, or why it failed.
FETCH_DONE_REASONS = frozenset({"Fetched", "Cached"})
FETCH_FAILURE_REASONS = frozenset(
    {
        "Unauthorized",
        "NotFound",
        "ChecksumMismatch",
        "NoSpace",
        "Unreachable",
        "InvalidModel",
        "FetchFailed",
    }
)


def _tagged(tag: str) -> re.Pattern[str]:
    """``<tag>=<Reason>: <paragraph>``: how kubevino's processes head a termination message."""
    return re.compile(rf"^{tag}=(?P<reason>[A-Za-z]+): (?P<paragraph>.*)$", re.DOTALL)


_FETCH_MESSAGE = _tagged("ModelFetch")
_DEVICE_MESSAGE = _tagged("DeviceAccess")


@dataclass(frozen=True)
class PodProblem:
    reason: str
    message: str
    # A pod no node takes yet may be waiting for an autoscaler: said, but not a failure.
    transient: bool = False
    # The condition besides Ready whose reason this is: "DeviceAccess" (the server's device
    # check stopped it) or "ModelLoaded" (the model fetch failed); "" for Ready alone.
    condition: str = ""
    node: str = ""
    pod: str = ""
    # What a Dynamic Resource Allocation problem names: the DeviceClass, the DRA driver or the
    # error of the selector that failed.
    subject: str = ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _device_problem(pod_name: str, node: str, message: str) -> PodProblem | None:
    """The runtime writes ``DeviceAccess=<Reason>: <paragraph>`` when a device check fails."""
    found = _DEVICE_MESSAGE.match(message.strip())
    if found is None or found["reason"] not in DEVICE_ACCESS_REASONS:
        return None
    where = f" on node {node}" if node else ""
    return PodProblem(
        found["reason"],
        _short(f"pod {pod_name}{where}: {found['paragraph']}"),
        condition="DeviceAccess",
        node=node,
        pod=pod_name,
    )


def _claim_problem(pod_name: str, node: str, said: str, problem: ClaimProblem) -> PodProblem:
    """A pod's claim that gives it no device: a DeviceAccess problem like the device check's."""
    return PodProblem(
        problem.reason,
        _short(f"pod {pod_name}: {said}"),
        condition="DeviceAccess",
        node=node,
        pod=pod_name,
        subject=problem.subject,
    )


def _fetch_problem(pod_name: str, container: str, message: str) -> PodProblem | None:
    """``kubevino-fetch`` writes ``ModelFetch=<Reason>: <what happened>`` when it fails."""
    found = _FETCH_MESSAGE.match(message.strip())
    if found is None or found["reason"] not in FETCH_FAILURE_REASONS:
        return None
    return PodProblem(
        found["reason"],
        _short(f"pod {pod_name}, init container {container}: {found['paragraph']}"),
        condition="ModelLoaded",
    )


def fetch_report(pods: list[dict[str, Any]]) -> str | None:
    """What the newest pod's successful fetch said (``ModelFetch=Fetched: …``), if any."""
    reports = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
            done = ((container.get("state") or {}).get("terminated")) or {}
            found = _FETCH_MESSAGE.match((done.get("message") or "").strip())
            if done.get("exitCode") == 0 and found and found["reason"] in FETCH_DONE_REASONS:
                reports.append((done.get("finishedAt") or "", done["message"].strip()))
    return max(reports)[1] if reports else None


def _container_problem(pod_name: str, node: str, container: dict[str, Any]) -> PodProblem | None:
    name = container.get("name", "?")
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason", "")
    detail = waiting.get("message", "")
    if reason in _IMAGE_PULL:
        return PodProblem(
            "ImagePullFailed",
            _short(
                f"pod {pod_name}: image {container.get('image', '?')} of container {name} "
                f"cannot be pulled ({reason}): {detail}"
            ),
        )
    if reason in _START_FAILED:
        injection = injection_problem(detail)
        if injection is not None:
            where = f" on node {node}" if node else ""
            said = f"container {name}{where} cannot be created: {detail}"
            return _claim_problem(pod_name, node, said, injection)
        return PodProblem(
            "ContainerStartFailed", _short(f"pod {pod_name}: container {name}: {reason}: {detail}")
        )
    last = (container.get("lastState") or {}).get("terminated") or {}
    current = (container.get("state") or {}).get("terminated") or {}
    terminated = current or last
    if terminated and terminated.get("exitCode", 0) != 0:
        said_message = terminated.get("message") or ""
        specific = _device_problem(pod_name, node, said_message) or _fetch_problem(
            pod_name, name, said_message
        )
        if specific is not None:
            return specific
        said = terminated.get("message") or terminated.get("reason") or "no message"
        restarts = container.get("restartCount", 0)
        return PodProblem(
            "ServerCrashing",
            _short(
                f"pod {pod_name}: container {name} exited with code "
                f"{terminated.get('exitCode')} ({restarts} restarts): {said}"
            ),
        )
    return None


def diagnose(pods: list[dict[str, Any]]) -> PodProblem | None:
    """The first problem found among the model's pods (init containers first), or None."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        name = pod["metadata"]["name"]
        node = (pod.get("spec") or {}).get("nodeName", "")
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            unscheduled = condition.get("type") == "PodScheduled" and (
                condition.get("status") == "False"
            )
            # SchedulerError: what the scheduler could not decide (a claim's selector that
            # fails on a device) rather than what no node has.
            if unscheduled and condition.get("reason") in ("Unschedulable", "SchedulerError"):
                message = condition.get("message", "")
                claim = scheduling_problem(message)
                if claim is not None:
                    return _claim_problem(name, "", f"fits no node: {message}", claim)
            if unscheduled and condition.get("reason") == "Unschedulable":
                return PodProblem(
                    "Unschedulable",
                    _short(f"pod {name} fits no node: {condition.get('message', '')}"),
                    transient=True,
                )
        for key in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(key) or []:
                problem = _container_problem(name, node, container)
                if problem is not None:
                    return problem
    return None


# Warning Events the kubelet and scheduler raise about a pod that never gets a container.
_POD_EVENT_REASONS = {
    "FailedMount": "VolumeMountFailed",
    "FailedAttachVolume": "VolumeMountFailed",
    "FailedCreatePodSandBox": "SandboxFailed",
    "FailedScheduling": "Unschedulable",
}


# Events are read per pod, for a few pods at most: a namespace-wide list would cost every
# refresh of every model a read of every other model's warnings.
EVENT_PODS_LIMIT = 3


def pods_worth_events(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods whose Warning Events may explain them: on a node, yet no container runs.

    A pod no node took says why in its PodScheduled condition, and one whose containers
    started says it in their statuses; only the stretch between (volumes, sandbox, the
    kubelet preparing its ResourceClaims) is in Events alone.
    """
    waiting = [
        pod
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and (pod.get("spec") or {}).get("nodeName")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    ]
    return sorted(waiting, key=lambda p: p["metadata"]["name"])[:EVENT_PODS_LIMIT]


def warning_events_selector(pod: dict[str, Any]) -> str:
    return f"type=Warning,involvedObject.uid={pod['metadata']['uid']}"


def diagnose_events(pods: list[dict[str, Any]], events: list[dict[str, Any]]) -> PodProblem | None:
    """The newest telling Warning Event about one of the pods, for pods that never got as far
    as a container status (a volume that does not mount, a sandbox that fails, a claim whose
    DRA driver does not prepare it)."""
    names = {
        pod["metadata"]["name"] for pod in pods if not pod["metadata"].get("deletionTimestamp")
    }
    telling = [
        event
        for event in events
        if (event.get("involvedObject") or {}).get("name") in names
        and event.get("reason") in (*_POD_EVENT_REASONS, PREPARE_FAILED_EVENT)
    ]
    if not telling:
        return None
    newest = max(
        telling,
        key=lambda e: (
            e.get("lastTimestamp")
            or e.get("eventTime")
            or e["metadata"].get("creationTimestamp", "")
        ),
    )
    pod_name = newest["involvedObject"]["name"]
    said = f"{newest['reason']}: {newest.get('message', '')}"
    claim = _event_claim_problem(newest)
    if claim is not None:
        nodes = {p["metadata"]["name"]: (p.get("spec") or {}).get("nodeName", "") for p in pods}
        return _claim_problem(pod_name, nodes.get(pod_name, ""), said, claim)
    return PodProblem(
        _POD_EVENT_REASONS[newest["reason"]],
        transient=newest["reason"] == "FailedScheduling",
        message=_short(f"pod {pod_name}: {newest['reason']}: {newest.get('message', '')}"),
    )


def _event_claim_problem(event: dict[str, Any]) -> ClaimProblem | None:
    message = event.get("message", "")
    if event.get("reason") == PREPARE_FAILED_EVENT:
        return prepare_problem(message)
    if event.get("reason") == "FailedScheduling":
        return scheduling_problem(message)
    return None
