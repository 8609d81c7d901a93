"""An unchanged object is recognised as applied, so a resync sends no write."""

from __future__ import annotations

from typing import Any

from kubevino_operator.drift import already_applied, contains

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "m",
        "namespace": "n",
        "labels": {"a": "1"},
        "ownerReferences": [{"uid": "u1", "kind": "InferenceModel"}],
    },
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "server", "resources": {"limits": {"gpu.intel.com/i915": 1}}}
                ]
            }
        }
    },
}


def live_copy(**changes: Any) -> dict[str, Any]:
    live: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "m",
            "namespace": "n",
            "labels": {"a": "1", "team": "x"},
            "resourceVersion": "7",
            "ownerReferences": [{"uid": "u1", "kind": "InferenceModel", "controller": True}],
        },
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "terminationMessagePath": "/dev/termination-log",
                            "resources": {"limits": {"gpu.intel.com/i915": "1"}},
                        }
                    ]
                }
            },
        },
    }
    live.update(changes)
    return live


def test_server_defaults_and_other_managers_fields_do_not_count_as_drift() -> None:
    assert already_applied(live_copy(), DESIRED)


def test_a_changed_or_missing_field_is_drift() -> None:
    changed = live_copy()
    changed["metadata"]["labels"]["a"] = "2"
    assert not already_applied(changed, DESIRED)
    assert not already_applied(None, DESIRED)
    orphan = live_copy()
    orphan["metadata"]["ownerReferences"] = []
    assert not already_applied(orphan, DESIRED)


def test_lists_match_item_by_item() -> None:
    assert not contains([{"a": 1}], [{"a": 1}, {"b": 2}])
    assert contains([{"a": 1, "z": 0}, {"b": 2}], [{"a": 1}, {"b": 2}])
    assert not contains(True, 1) and contains("2Gi", "2Gi") and contains("1", 1)
