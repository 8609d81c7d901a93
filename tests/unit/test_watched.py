"""The pods the operator keeps in memory carry everything the status reads of them."""

from __future__ import annotations

from typing import Any

from kubevino_operator.podhealth import diagnose, fetch_report, pods_worth_events
from kubevino_operator.watched import ModelSeen, model_entry, pod_entry, pod_view


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
