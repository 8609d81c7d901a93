"""Status is computed from the Deployment alone, honestly, and stays byte-identical when
nothing changed (so a resync writes nothing)."""

from __future__ import annotations

from typing import Any

from kubevino_operator.render import Rendered
from kubevino_operator.resolve import Refusal
from kubevino_operator.status import build_status
from tests.unit.builders import model, rendered

T0, T1 = "2026-11-23T00:00:00Z", "2026-11-23T00:05:00Z"


def deployment(
    desired: int,
    available: int,
    updated: int | None = None,
    progress_reason: str = "NewReplicaSetAvailable",
) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 2,
            "replicas": desired,
            "updatedReplicas": desired if updated is None else updated,
            "availableReplicas": available,
            "readyReplicas": available,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": progress_reason,
                    "message": "ReplicaSet progress",
                }
            ],
        },
    }


KSTATUS_TWINS = {"Reconciling", "Stalled"}


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Ready/Progressing/Degraded; their kstatus twins are checked to mirror them."""
    found = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert found["Reconciling"] == found["Progressing"]
    assert found["Stalled"] == found["Degraded"]
    return {kind: value for kind, value in found.items() if kind not in KSTATUS_TWINS}


def _render() -> Rendered:
    return rendered(model())


def test_ready_only_when_every_desired_pod_is_available() -> None:
    rolling = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(2, 1)
    )
    assert _conditions(rolling) == {
        "Ready": ("False", "RollingOut"),
        "Progressing": ("True", "RollingOut"),
        "Degraded": ("False", "AsExpected"),
        "DeviceAccess": ("True", "NoDeviceNeeded"),
        "ModelLoaded": ("Unknown", "Pending"),
    }
    serving = build_status(
        generation=3, previous=rolling, now=T1, rendered=_render(), deployment=deployment(2, 2)
    )
    assert _conditions(serving)["Ready"] == ("True", "Serving")
    assert _conditions(serving)["Progressing"] == ("False", "RolledOut")
    assert all(c["observedGeneration"] == 3 for c in serving["conditions"])
    assert serving["readyReplicas"] == 2 and serving["replicas"] == 2
    assert serving["selector"] == "kubevino.io/inference-model=resnet"


def test_a_template_not_yet_applied_is_not_ready() -> None:
    stale = build_status(
        generation=3,
        previous=None,
        now=T0,
        rendered=_render(),
        deployment=deployment(1, 1),
        template_generation_current=False,
    )
    assert _conditions(stale)["Ready"] == ("False", "RollingOut")


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = build_status(
        generation=1, previous=None, now=T0, rendered=_render(), deployment=deployment(1, 0)
    )
    again = build_status(
        generation=1, previous=first, now=T1, rendered=_render(), deployment=deployment(1, 0)
    )
    assert again == first  # nothing changed: nothing to write
    ready = build_status(
        generation=1, previous=first, now=T1, rendered=_render(), deployment=deployment(1, 1)
    )
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times == {
        "Ready": T1,
        "Progressing": T1,
        "Degraded": T0,
        "DeviceAccess": T0,  # a CPU model needs no device, before and after
        "ModelLoaded": T1,  # Unknown until a pod serves
        "Reconciling": T1,
        "Stalled": T0,
    }


def test_a_stuck_rollout_is_degraded() -> None:
    stuck = build_status(
        generation=1,
        previous=None,
        now=T0,
        rendered=_render(),
        deployment=deployment(1, 0, progress_reason="ProgressDeadlineExceeded"),
    )
    assert _conditions(stuck)["Degraded"] == ("True", "ProgressDeadlineExceeded")
    assert _conditions(stuck)["Progressing"] == ("False", "ProgressDeadlineExceeded")


def test_refusals_and_invalid_specs_are_stalled_with_their_reason() -> None:
    refused = build_status(
        generation=4,
        previous=None,
        now=T0,
        rendered=Refusal("PrivilegeNotAllowed", "set allowPrivileged"),
        deployment=None,
    )
    assert _conditions(refused) == {
        "Ready": ("False", "PrivilegeNotAllowed"),
        "Progressing": ("False", "PrivilegeNotAllowed"),
        "Degraded": ("True", "PrivilegeNotAllowed"),
        "DeviceAccess": ("False", "NotAllowed"),
        "ModelLoaded": ("Unknown", "NotRendered"),
    }
    invalid = build_status(
        generation=4,
        previous=None,
        now=T0,
        rendered=None,
        deployment=None,
        invalid="device listed twice",
    )
    assert _conditions(invalid)["Ready"] == ("False", "InvalidSpec")


def test_zero_replicas_is_not_ready_but_not_degraded() -> None:
    idle = build_status(
        generation=1, previous=None, now=T0, rendered=_render(), deployment=deployment(0, 0)
    )
    assert _conditions(idle)["Ready"] == ("False", "ScaledToZero")
    assert _conditions(idle)["Degraded"] == ("False", "AsExpected")
