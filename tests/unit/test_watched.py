"""The pods the operator keeps in memory carry everything the status reads of them."""

from __future__ import annotations

from typing import Any

from kubevino_operator.podhealth import diagnose, fetch_report, pods_worth_events
from kubevino_operator.watched import ModelSeen, OwnerCopies, model_entry, pod_entry, pod_view


def _pod(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "labels": {"kubevino.io/inference-model": "resnet"},
            "annotations": {"big": "x" * 10_000},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"nodeName": "node-a", "containers": [{"name": "server", "image": "r:1"}]},
        "status": status,
    }


def test_a_pod_kept_in_memory_tells_the_status_what_the_whole_pod_tells() -> None:
    crashed = {
        "name": "server",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "DeviceAccess=GroupMissing: no"}},
    }
    fetched = {
        "name": "fetch-model",
        "state": {
            "terminated": {
                "exitCode": 0,
                "message": "ModelFetch=Fetched: 1 file",
                "finishedAt": "2026-01-01T00:00:00Z",
            }
        },
    }
    pods = [
        _pod("resnet-1", phase="Running", containerStatuses=[crashed]),
        _pod("resnet-2", phase="Pending", initContainerStatuses=[fetched]),
    ]
    kept = [pod_view(pod) for pod in pods]
    assert diagnose(kept) == diagnose(pods) is not None
    assert fetch_report(kept) == fetch_report(pods) == "ModelFetch=Fetched: 1 file"
    assert [p["metadata"]["uid"] for p in pods_worth_events(kept)] == ["uid-resnet-2"]
    assert "annotations" not in kept[0]["metadata"] and "containers" not in kept[0]["spec"]


def test_pods_are_indexed_under_their_model_and_models_with_readiness_and_version() -> None:
    assert pod_entry(_pod("resnet-1", phase="Running")) == {
        ("ml", "resnet"): pod_view(_pod("resnet-1", phase="Running"))
    }
    stray = _pod("other")
    stray["metadata"]["labels"] = {}
    assert pod_entry(stray) == {}
    model = {
        "metadata": {"namespace": "ml", "name": "resnet", "resourceVersion": "42"},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    assert model_entry(model) == {("ml", "resnet"): ModelSeen("False", "42")}


def _model(version: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ml", "name": "resnet", "resourceVersion": version}}


def test_a_kept_copy_of_a_model_is_trusted_until_the_watch_sees_a_version_it_does_not_know() -> (
    None
):
    copies = OwnerCopies()
    key = ("ml", "resnet")
    assert copies.current(key, ModelSeen("", "1")) is None  # nothing kept yet
    copies.remember(key, _model("1"))
    copies.remember(key, _model("2"))  # the operator's own status write
    assert copies.current(key, ModelSeen("", "2")) == _model("2")
    # The watch has not caught up with that write yet: still the newest there is.
    assert copies.current(key, ModelSeen("", "1")) == _model("2")
    # Someone else changed the model: read it again.
    assert copies.current(key, ModelSeen("", "3")) is None
    assert copies.current(key, None) is None
    copies.forget(key)
    assert copies.current(key, ModelSeen("", "2")) is None and not copies.keys()


def test_a_model_handed_over_as_it_was_before_the_operators_own_write_is_not_kept() -> None:
    copies = OwnerCopies()
    key = ("ml", "resnet")
    copies.offer(key, _model("1"))
    copies.remember(key, _model("2"))
    copies.offer(key, _model("1"))  # kopf's body from before the status write
    assert copies.current(key, ModelSeen("", "2")) == _model("2")
    copies.offer(key, _model("3"))  # a version the operator has not seen: newer
    assert copies.current(key, ModelSeen("", "3")) == _model("3")
