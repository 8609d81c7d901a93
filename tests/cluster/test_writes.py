"""What the operator writes for a model: the objects it renders and the model's status — never
the model itself (no bookkeeping annotations, no finalizer). Counted on the API server's audit
log with the controllers held still, so no Deployment status or pod adds a refresh."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import ControlPlane
from tests.cluster.conftest import condition, get, model_manifest, wait_until
from tests.harness.audit import operator_writes, tally
from tests.harness.controllers import controllers_paused
from tests.harness.operator import OperatorProcess

pytestmark = pytest.mark.cluster

# Long enough for a late write (a second status write, kopf's own patch) to reach the audit log.
STRAGGLER_SECONDS = 3


def apply(cluster: ControlPlane, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def status_current(cluster: ControlPlane, name: str, namespace: str) -> bool:
    model = get(cluster, "inferencemodel", name, namespace)
    return bool(
        model
        and condition(model, "Ready").get("observedGeneration") == model["metadata"]["generation"]
    )


def writes_in(cluster: ControlPlane, namespace: str, since: float) -> Counter[str]:
    time.sleep(STRAGGLER_SECONDS)
    writes = operator_writes(cluster.audit_log, since)
    return tally([w for w in writes if f"/namespaces/{namespace}/" in w["uri"]])


def test_a_new_model_costs_its_three_objects_and_one_status_write(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    names = [f"counted-{i}" for i in range(3)]
    with controllers_paused(cluster):
        started = time.time()
        for name in names:
            apply(cluster, model_manifest(name, namespace))
        wait_until(
            lambda: all(status_current(cluster, name, namespace) for name in names), 60, "statuses"
        )
        writes = writes_in(cluster, namespace, started)
    assert writes == {
        "patch configmaps": 3,
        "patch deployments": 3,
        "patch services": 3,
        "patch inferencemodels/status": 3,
    }, operator.log()


def test_a_spec_change_costs_the_applies_and_one_status_write_and_a_label_costs_nothing(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    with controllers_paused(cluster):
        apply(cluster, model_manifest("tuned", namespace))
        wait_until(lambda: status_current(cluster, "tuned", namespace), 60, "first status")
        time.sleep(STRAGGLER_SECONDS)
        changed = time.time()
        apply(cluster, model_manifest("tuned", namespace, performance={"hint": "LATENCY"}))
        wait_until(lambda: status_current(cluster, "tuned", namespace), 60, "second status")
        assert writes_in(cluster, namespace, changed) == {
            "patch configmaps": 1,
            "patch deployments": 1,
            "patch services": 1,
            "patch inferencemodels/status": 1,
        }, operator.log()
        labelled = time.time()
        cluster.kubectl("label", "inferencemodel", "tuned", "-n", namespace, "team=vision")
        assert writes_in(cluster, namespace, labelled) == {}
    config = get(cluster, "configmap", "tuned-config", namespace)
    assert config is not None and "LATENCY" in config["data"]["config.json"]
