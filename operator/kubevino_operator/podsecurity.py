"""Which Pod Security Standard level a pod spec meets (the checks that matter for our pods).

Computed from the rendered pod rather than declared, so status and docs cannot drift from what
the pod really asks for. Mirrors the baseline and restricted policies of
https://kubernetes.io/docs/concepts/security/pod-security-standards/ for the fields we render.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubevino_operator.api import PodSecurityLevel

_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_GOOD_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})


def _containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key) or []


def baseline_violations(pod_spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            found.append(f"{flag} is true")
    for volume in pod_spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"volume {volume['name']} is a hostPath")
    pod_seccomp = (pod_spec.get("securityContext") or {}).get("seccompProfile") or {}
    if pod_seccomp.get("type") == "Unconfined":
        found.append("pod seccomp profile is Unconfined")
    for container in _containers(pod_spec):
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("privileged"):
            found.append(f"container {name} is privileged")
        added = set((context.get("capabilities") or {}).get("add") or [])
        if added - _BASELINE_CAPABILITIES:
            found.append(f"container {name} adds {sorted(added - _BASELINE_CAPABILITIES)}")
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"container {name} seccomp profile is Unconfined")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"container {name} uses a hostPort")
    return found


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    found: list[str] = []
    pod_context = pod_spec.get("securityContext") or {}
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    if pod_context.get("runAsUser") == 0:
        found.append("pod runs as UID 0")
    for container in _containers(pod_spec):
        context = container.get("securityContext") or {}
        name = container["name"]
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"container {name} does not set runAsNonRoot")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            found.append(f"container {name} runs as UID 0")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"container {name} allows privilege escalation")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"container {name} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"container {name} adds capabilities")
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if seccomp.get("type") not in _GOOD_SECCOMP:
            found.append(f"container {name} has no RuntimeDefault seccomp profile")
    return found


def pod_security_level(pod_spec: dict[str, Any]) -> PodSecurityLevel:
    if baseline_violations(pod_spec):
        return "privileged"
    if restricted_violations(pod_spec):
        return "baseline"
    return "restricted"
