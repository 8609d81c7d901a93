"""Restarts: an idle resync writes nothing; a killed operator converges without duplicates;
an API server restart is survived."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kubevino_devcluster.controlplane import ControlPlane
from kubevino_devcluster.ports import free_port
from tests.cluster.conftest import condition, get, model_manifest, wait_until
from tests.harness.audit import operator_writes
from tests.harness.operator import OperatorProcess

pytestmark = pytest.mark.cluster


def settled_check(cluster: ControlPlane, namespace: str, name: str) -> Callable[[], bool]:
    return lambda: settled(cluster, namespace, name)


def settled(cluster: ControlPlane, namespace: str, name: str) -> bool:
    model = get(cluster, "inferencemodel", name, namespace)
    if model is None:
        return False
    observed = condition(model, "Ready").get("observedGeneration")
    applied = (model.get("status") or {}).get("appliedReplicas")
    return bool(observed == model["metadata"]["generation"] and applied == 1)


def test_a_restart_with_nothing_changed_makes_zero_writes(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    names = [f"idle-{i}" for i in range(3)]
    for name in names:
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest(name, namespace)))
    for name in names:
        wait_until(settled_check(cluster, namespace, name), 90, f"{name} settled")
    time.sleep(3)  # let Deployment/ReplicaSet events finish flowing into status
    operator.stop()
    restarted = time.time()
    operator.start()
    time.sleep(12)  # resume handlers run for every model, Deployment events replay
    writes = [w for w in operator_writes(cluster.audit_log, restarted) if namespace in w["uri"]]
    assert writes == [], writes


def test_a_restart_repairs_what_drifted_meanwhile_and_writes_only_that(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest("drifted", namespace)))
    wait_until(settled_check(cluster, namespace, "drifted"), 90, "settled")
    time.sleep(3)
    operator.stop()
    cluster.kubectl("delete", "service", "drifted", "-n", namespace)
    cluster.kubectl(
        "patch", "configmap", "drifted-config", "-n", namespace, "--type=merge",
        "-p", json.dumps({"data": {"config.json": "{}"}}),
    )  # fmt: skip
    restarted = time.time()
    operator.start()
    wait_until(lambda: get(cluster, "service", "drifted", namespace), 60, "the Service back")
    wait_until(
        lambda: (
            (get(cluster, "configmap", "drifted-config", namespace) or {})
            .get("data", {})
            .get("config.json", "{}")
            != "{}"
        ),
        60,
        "the config back",
    )
    time.sleep(3)
    writes = [w for w in operator_writes(cluster.audit_log, restarted) if namespace in w["uri"]]
    assert sorted(w["resource"] for w in writes) == ["configmaps", "services"], writes


def test_a_killed_operator_converges_without_duplicates(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    operator.kill()
    for i in range(4):
        cluster.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump(model_manifest(f"burst-{i}", namespace))
        )
    operator.start()
    time.sleep(1.0)
    operator.kill()  # mid-reconcile
    operator.start()
    for i in range(4):
        wait_until(settled_check(cluster, namespace, f"burst-{i}"), 90, "converged")
    deployments = json.loads(
        cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout
    )["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == [f"burst-{i}" for i in range(4)]


def test_an_api_server_restart_is_survived(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    cluster.restart_apiserver()
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest("after", namespace)))
    try:
        wait_until(lambda: get(cluster, "deployment", "after", namespace), 120, "reconciled")
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{operator.log()}") from None
    assert operator.process is not None and operator.process.poll() is None, operator.log()


def test_an_operator_given_namespaces_watches_only_those(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    operator.stop()
    scoped = OperatorProcess(
        operator.kubeconfig,
        operator.settings,
        tmp_path / "scoped.log",
        extra_args=["--namespace", namespace],
    )
    scoped.start()
    try:
        for ns in (namespace, other):
            cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest("m", ns)))
        wait_until(lambda: get(cluster, "deployment", "m", namespace), 60, "watched namespace")
        time.sleep(3)
        assert get(cluster, "deployment", "m", other) is None, scoped.log()
    finally:
        scoped.stop()
        operator.start()
    wait_until(lambda: get(cluster, "deployment", "m", other), 60, "picked up after restart")


def test_the_operator_serves_a_liveness_endpoint_for_its_own_pod(
    cluster: ControlPlane, operator: OperatorProcess, tmp_path: Path
) -> None:
    port = free_port()
    operator.stop()
    # A later --health-port wins over the harness's "--health-port 0".
    probed = OperatorProcess(
        operator.kubeconfig,
        operator.settings,
        tmp_path / "probed.log",
        extra_args=["--health-port", str(port)],
    )
    probed.start()
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_until(healthy, 60, "/healthz answering 200")
    finally:
        probed.stop()
        operator.start()
