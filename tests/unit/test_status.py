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


def test_a_pod_the_disruption_budget_lets_go_keeps_a_serving_model_ready() -> None:
    """A node drain evicts one of two pods: the model still serves, so Ready stays True
    (and its transition time with it) while the Deployment replaces the pod."""
    serving = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(2, 2)
    )
    drained = build_status(
        generation=3, previous=serving, now=T1, rendered=_render(), deployment=deployment(2, 1)
    )
    ready = next(c for c in drained["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "True",
        "Serving",
        T0,
    )
    assert ready["message"].startswith("1/2 pods serve the model while the rest are replaced")
    progressing = next(c for c in drained["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["message"]) == (
        "True",
        "1/2 pods available; replacing the rest",
    )
    assert _conditions(drained)["ModelLoaded"][0] == "True"

    three = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(3, 3)
    )
    two_away = build_status(
        generation=3, previous=three, now=T1, rendered=_render(), deployment=deployment(3, 1)
    )
    assert _conditions(two_away)["Ready"] == ("False", "RollingOut")  # more than the budget


def test_a_missing_pod_is_not_ready_before_serving_in_a_new_spec_or_with_one_replica() -> None:
    serving = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(2, 2)
    )
    never_served = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(2, 1)
    )
    new_spec = build_status(
        generation=4, previous=serving, now=T1, rendered=_render(), deployment=deployment(2, 1)
    )
    rolling_out = build_status(
        generation=3,
        previous=serving,
        now=T1,
        rendered=_render(),
        deployment={
            **deployment(2, 1, updated=1),
            "status": {**deployment(2, 1, updated=1)["status"], "replicas": 3},
        },
    )
    single = build_status(
        generation=3, previous=None, now=T0, rendered=_render(), deployment=deployment(1, 1)
    )
    single_gone = build_status(
        generation=3, previous=single, now=T1, rendered=_render(), deployment=deployment(1, 0)
    )
    stuck = build_status(
        generation=3,
        previous=serving,
        now=T1,
        rendered=_render(),
        deployment=deployment(2, 1, progress_reason="ProgressDeadlineExceeded"),
    )
    for status in (never_served, new_spec, rolling_out, single_gone, stuck):
        assert _conditions(status)["Ready"][0] == "False", status["conditions"]


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
