"""Folding the reasons for status refreshes: which Deployment a folded refresh may trust."""

from __future__ import annotations

from typing import Any

from kubevino_operator.handlers import RefreshHints, _merged_hints


def _deployment(version: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}}


def test_of_two_deployments_from_the_watch_the_later_event_wins() -> None:
    merged = _merged_hints(
        RefreshHints(None, _deployment("5")), RefreshHints(None, _deployment("7"))
    )
    assert merged.deployment == _deployment("7")


def test_the_operators_own_write_and_a_watch_event_that_differ_mean_read_it_again() -> None:
    written = RefreshHints(1, _deployment("5"), deployment_from_watch=False)
    watched = RefreshHints(None, _deployment("6"))
    for older, newer in ((written, watched), (watched, written)):
        merged = _merged_hints(older, newer)
        assert merged.deployment is None and merged.applied_replicas == 1
    same = _merged_hints(RefreshHints(None, _deployment("5")), written)
    assert same.deployment == _deployment("5") and same.applied_replicas == 1


def test_a_refresh_without_a_deployment_keeps_the_one_it_joins() -> None:
    merged = _merged_hints(RefreshHints(None, _deployment("5")), RefreshHints())
    assert merged.deployment == _deployment("5") and merged.deployment_from_watch
