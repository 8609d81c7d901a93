"""Pure: what Dynamic Resource Allocation did with a ResourceClaim-mode model's pods.

Which devices each pod's claims were allocated (``status.devices``), read from the claims'
``status.allocation.devices.results``; and, when a pod gets none, why, from the words of the
component that refused: the scheduler's ``PodScheduled=False`` message (no device satisfies
the request, a selector fails on the devices, the DeviceClass is gone), the kubelet's
``FailedPrepareDynamicResources`` Event (the class's DRA driver does not run on the node), and
the container runtime's create error (CDI could not inject the device the driver named). Those
words are the only place these causes are told apart: a claim carries no condition saying why
it is not allocated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NO_MATCHING_DEVICE = "NoMatchingDevice"
DEVICE_CLASS_MISSING = "DeviceClassMissing"
DEVICE_SELECTOR_FAILED = "DeviceSelectorFailed"
DRA_DRIVER_NOT_RUNNING = "DRADriverNotRunning"
CDI_INJECTION_FAILED = "CDIInjectionFailed"
CLAIM_PREPARE_FAILED = "ClaimPrepareFailed"
CLAIM_REASONS = frozenset(
    {
        NO_MATCHING_DEVICE,
        DEVICE_CLASS_MISSING,
        DEVICE_SELECTOR_FAILED,
        DRA_DRIVER_NOT_RUNNING,
        CDI_INJECTION_FAILED,
        CLAIM_PREPARE_FAILED,
    }
)
PREPARE_FAILED_EVENT = "FailedPrepareDynamicResources"

# The scheduler's DynamicResources plugin: a class a request names that is not there, and an
# allocator that found no set of devices for every claim (none matches, or those that do are
# allocated to other claims).
_CLASS_MISSING = re.compile(
    r"device class (?P<name>[\w.-]+) does not exist"
    r"|deviceclass(?:\.resource\.k8s\.io)? \\?\"(?P<quoted>[\w.-]+)\\?\" not found",
    re.IGNORECASE,
)
_CANNOT_ALLOCATE = "cannot allocate all claims"
# A selector that fails on a published device (it names an attribute or capacity the device
# does not have): the scheduler stops with an error rather than skipping the device. From
# v1.35 the scheduler names the device too ("selector #0 on device driver/pool/name: ...")
# and appends a hint after the error ("... no such key: family. consider using ...").
_SELECTOR_ERROR = re.compile(
    r"selector #\d+(?: on device [^:]+)?: CEL runtime error: (?P<error>[^.]*)"
)
# The kubelet: no plugin registered under the driver's name, or its socket does not answer.
_DRIVER_GONE = re.compile(
    r"DRA driver (?P<driver>[\w.-]+) is not registered"
    r"|connection refused|error while dialing|Unavailable|no such file or directory",
    re.IGNORECASE,
)
_DRIVER_NAMED = re.compile(r"DRA driver (?P<driver>[\w.-]+)", re.IGNORECASE)
# containerd (and CRI-O) when a CDI device name resolves to no spec they read.
_CDI_FAILED = re.compile(r"CDI device injection failed|unresolvable CDI devices", re.IGNORECASE)


@dataclass(frozen=True)
class ClaimProblem:
    """Why a pod's claim gives it no device: one of ``CLAIM_REASONS`` and what was said."""

    reason: str
    said: str
    # What the saying names, when it does: the DeviceClass, the DRA driver, or the selector's
    # error.
    subject: str = ""


def scheduling_problem(message: str) -> ClaimProblem | None:
    """The scheduler's ``PodScheduled=False`` message (or its ``FailedScheduling`` Event)."""
    missing = _CLASS_MISSING.search(message)
    if missing is not None:
        return ClaimProblem(
            DEVICE_CLASS_MISSING, message, missing["name"] or missing["quoted"] or ""
        )
    failed = _SELECTOR_ERROR.search(message)
    if failed is not None:
        return ClaimProblem(DEVICE_SELECTOR_FAILED, message, failed["error"].strip())
    if _CANNOT_ALLOCATE in message:
        return ClaimProblem(NO_MATCHING_DEVICE, message)
    return None


def prepare_problem(message: str) -> ClaimProblem:
    """The kubelet's ``FailedPrepareDynamicResources`` Event: the driver is away, or it
    refused to prepare the claim."""
    named = _DRIVER_NAMED.search(message)
    driver = named["driver"] if named else ""
    if _DRIVER_GONE.search(message):
        return ClaimProblem(DRA_DRIVER_NOT_RUNNING, message, driver)
    return ClaimProblem(CLAIM_PREPARE_FAILED, message, driver)


def injection_problem(message: str) -> ClaimProblem | None:
    """A container create error that says the runtime could not inject a CDI device."""
    if _CDI_FAILED.search(message):
        return ClaimProblem(CDI_INJECTION_FAILED, message)
    return None


# --- which devices the claims were allocated -------------------------------------------------


def pod_claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The ResourceClaims a pod uses: the ones made from its templates (named in its status
    once the controller created them) and the ones it names itself."""
    made = [
        entry["resourceClaimName"]
        for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []
        if entry.get("resourceClaimName")
    ]
    named = [
        entry["resourceClaimName"]
        for entry in (pod.get("spec") or {}).get("resourceClaims") or []
        if entry.get("resourceClaimName")
    ]
    return sorted({*made, *named})


def generated_claim_names(pod: Mapping[str, Any]) -> set[str]:
    """Claims made from a template for this pod alone: their allocation never changes while
    they exist (they go with the pod), so once read allocated they need no second read."""
    return {
        entry["resourceClaimName"]
        for entry in (pod.get("status") or {}).get("resourceClaimStatuses") or []
        if entry.get("resourceClaimName")
    }


def is_allocated(claim: Mapping[str, Any]) -> bool:
    return bool(((claim.get("status") or {}).get("allocation") or {}).get("devices"))


def allocation_results(claim: Mapping[str, Any]) -> list[dict[str, Any]]:
    devices = ((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}
    return [dict(result) for result in devices.get("results") or []]


def allocated_devices(
    pods: Iterable[Mapping[str, Any]], claims: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, str]]:
    """``status.devices``: per pod (not being deleted) and claim, each allocated device with
    its driver, pool and device name, as the scheduler wrote them into the claim."""
    entries: list[dict[str, str]] = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        node = (pod.get("spec") or {}).get("nodeName") or ""
        for name in pod_claim_names(pod):
            claim = claims.get(name)
            if claim is None:
                continue
            for result in allocation_results(claim):
                entry = {
                    "pod": pod["metadata"]["name"],
                    "node": node,
                    "claim": name,
                    "request": str(result.get("request", "")),
                    "driver": str(result.get("driver", "")),
                    "pool": str(result.get("pool", "")),
                    "device": str(result.get("device", "")),
                }
                if not entry["node"]:
                    del entry["node"]  # allocated, not yet bound: the pool says where
                entries.append(entry)
    return sorted(
        entries, key=lambda e: (e["pod"], e["claim"], e["driver"], e["pool"], e["device"])
    )


def devices_of_pod(devices: Iterable[Mapping[str, str]], pod: str) -> str:
    """How a DeviceAccess message names the devices a pod was allocated."""
    named = [f"{d['driver']} device {d['pool']}/{d['device']}" for d in devices if d["pod"] == pod]
    return ", ".join(named)


class KnownClaims:
    """Per model: the claims last read, so a refresh reads only the claims it has to.

    A claim made from a template for one pod keeps its allocation for its whole life: once
    read allocated it is not read again. A claim the user names may be shared, deallocated and
    allocated anew, so it is read every time.
    """

    def __init__(self) -> None:
        self._claims: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def to_read(self, key: tuple[str, str], pods: list[dict[str, Any]]) -> list[str]:
        known = self._claims.get(key, {})
        settled = {
            name
            for pod in pods
            for name in generated_claim_names(pod)
            if name in known and is_allocated(known[name])
        }
        wanted = {name for pod in pods for name in pod_claim_names(pod)}
        return sorted(wanted - settled)

    def record(
        self, key: tuple[str, str], pods: list[dict[str, Any]], read: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        """Keep what was just read (a claim read as None is gone) and forget claims no pod
        uses any more; the claims the pods use, by name."""
        wanted = {name for pod in pods for name in pod_claim_names(pod)}
        known = {name: claim for name, claim in self._claims.get(key, {}).items() if name in wanted}
        for name, claim in read.items():
            if claim is None:
                known.pop(name, None)
            else:
                known[name] = {
                    "status": {"allocation": (claim.get("status") or {}).get("allocation")}
                }
        self._claims[key] = known
        return known

    def keys(self) -> set[tuple[str, str]]:
        return set(self._claims)

    def forget(self, key: tuple[str, str]) -> None:
        self._claims.pop(key, None)
