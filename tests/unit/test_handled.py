"""Which reconcile a model's watch event calls for, from its generation and status alone."""

from __future__ import annotations

from typing import Any

from kubevino_operator.handled import (
    CHANGED,
    NEW,
    RESUMED,
    Handled,
    handled_version,
    reconcile_for,
)


def model(
    generation: int, observed: int | None = None, uid: str = "u1", **meta: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "resnet",
            "namespace": "ml",
            "uid": uid,
            "generation": generation,
            **meta,
        },
        "spec": {},
    }
    if observed is not None:
        ready = {"type": "Ready", "status": "False", "observedGeneration": observed}
        body["status"] = {"conditions": [{"type": "Progressing", "status": "True"}, ready]}
    return body


def test_a_model_without_a_status_is_new_and_applied_without_reading_first() -> None:
    assert reconcile_for(model(1), None) == NEW
    assert not NEW.compare_first and not NEW.prune


def test_at_start_up_a_model_whose_status_describes_its_spec_is_compared_before_any_write() -> None:
    assert reconcile_for(model(3, observed=3), None) == RESUMED
    assert RESUMED.compare_first and RESUMED.prune


def test_a_spec_changed_while_no_operator_ran_is_applied_and_pruned() -> None:
    assert reconcile_for(model(4, observed=3), None) == CHANGED
    assert not CHANGED.compare_first and CHANGED.prune


def test_once_reconciled_a_generation_asks_for_nothing_more() -> None:
    body = model(2, observed=1)
    handled = handled_version(body)
    assert handled == Handled("u1", 2)
    # The echo of the operator's own status write, a label, an annotation: same generation.
    assert reconcile_for(model(2, observed=2, labels={"team": "a"}), handled) is None
    assert reconcile_for(model(2, observed=1), handled) is None


def test_a_new_generation_of_a_reconciled_model_is_an_update() -> None:
    assert reconcile_for(model(3, observed=2), Handled("u1", 2)) == CHANGED


def test_a_model_recreated_under_the_same_name_is_judged_afresh() -> None:
    assert reconcile_for(model(1), Handled("old-uid", 5)) == NEW


def test_a_model_being_deleted_asks_for_nothing() -> None:
    deleting = model(2, observed=1, deletionTimestamp="2026-01-01T00:00:00Z")
    assert reconcile_for(deleting, None) is None
    assert reconcile_for(deleting, Handled("u1", 1)) is None
