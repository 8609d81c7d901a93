"""The operator against a real API server, under the ClusterRole the chart ships."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import ControlPlane
from tests.cluster.conftest import (
    condition,
    get,
    model_manifest,
    wait_for_reason,
    wait_until,
)
from tests.harness.operator import OperatorProcess
from tests.unit.test_health_readers import argo_health, kstatus

pytestmark = pytest.mark.cluster


def apply(cluster: ControlPlane, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def _gone(cluster: ControlPlane, kind: str, name: str, namespace: str) -> Callable[[], bool]:
    return lambda: get(cluster, kind, name, namespace) is None


def owned_by(obj: dict[str, Any], model: dict[str, Any]) -> bool:
    owners = obj["metadata"].get("ownerReferences") or []
    return any(o["uid"] == model["metadata"]["uid"] and o.get("controller") for o in owners)


def test_a_model_becomes_deployment_service_and_config_owned_by_it(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, model_manifest("resnet", namespace, performance={"hint": "LATENCY"}))
    deployment = wait_until(
        lambda: get(cluster, "deployment", "resnet", namespace), 60, "the Deployment"
    )
    model = get(cluster, "inferencemodel", "resnet", namespace)
    assert model is not None
    service = get(cluster, "service", "resnet", namespace)
    config = get(cluster, "configmap", "resnet-config", namespace)
    assert service and config
    for obj in (deployment, service, config):
        assert owned_by(obj, model), obj["metadata"]
    assert json.loads(config["data"]["config.json"])["model_config_list"][0]["config"][
        "plugin_config"
    ] == {"PERFORMANCE_HINT": "LATENCY"}
    # No node runs the pods here: the status says so honestly.
    status = wait_for_reason(cluster, "resnet", namespace, "RollingOut")
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert argo_health(status)[0] == "Progressing" and kstatus(status) == "InProgress"
    assert ready["observedGeneration"] == status["metadata"]["generation"]
    assert condition(status, "Progressing")["status"] == "True"
    assert status["status"]["endpoints"]["grpc"] == f"resnet.{namespace}.svc.cluster.local:9000"
    assert status["status"]["accelerators"] == ["cpu"]
    assert status["status"]["podSecurityLevel"] == "restricted"


def test_a_refused_model_reports_why_with_a_condition_and_an_event(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(
        cluster,
        model_manifest(
            "gpu-host", namespace, device={"targetDevice": "GPU", "accessMode": "HostDevices"}
        ),
    )
    model = wait_for_reason(cluster, "gpu-host", namespace, "PrivilegeNotAllowed")
    assert "allowPrivileged" in condition(model, "Ready")["message"]
    # What GitOps tools make of the status the operator really wrote:
    assert argo_health(model)[0] == "Degraded" and kstatus(model) == "Failed"
    assert condition(model, "Degraded")["status"] == "True"
    assert get(cluster, "deployment", "gpu-host", namespace) is None
    events = wait_until(
        lambda: [
            e
            for e in json.loads(
                cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
            )["items"]
            if e["reason"] == "PrivilegeNotAllowed"
        ],
        30,
        "an Event",
    )
    assert events[0]["type"] == "Warning"
    described = cluster.kubectl("describe", "inferencemodel", "gpu-host", "-n", namespace).stdout
    assert "PrivilegeNotAllowed" in described


def test_fields_owned_by_others_survive_a_reconcile(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, model_manifest("shared", namespace))
    wait_until(lambda: get(cluster, "deployment", "shared", namespace), 60, "the Deployment")
    wait_until(
        lambda: (
            (get(cluster, "inferencemodel", "shared", namespace) or {})
            .get("status", {})
            .get("appliedReplicas")
            == 1
        ),
        60,
        "replicas pushed",
    )
    cluster.kubectl("label", "deployment", "shared", "-n", namespace, "team=vision")
    cluster.kubectl("annotate", "deployment", "shared", "-n", namespace, "owner=alice")
    cluster.kubectl("scale", "deployment", "shared", "-n", namespace, "--replicas=3")
    apply(cluster, model_manifest("shared", namespace, performance={"hint": "THROUGHPUT"}))
    wait_until(
        lambda: (
            "THROUGHPUT"
            in (get(cluster, "configmap", "shared-config", namespace) or {})
            .get("data", {})
            .get("config.json", "")
        ),
        60,
        "the new config",
    )
    deployment = get(cluster, "deployment", "shared", namespace)
    assert deployment is not None
    assert deployment["metadata"]["labels"]["team"] == "vision"
    assert deployment["metadata"]["annotations"]["owner"] == "alice"
    assert deployment["spec"]["replicas"] == 3  # the person's scale stands


def test_kubectl_scale_on_the_model_scales_its_deployment(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, model_manifest("scaled", namespace))
    wait_until(lambda: get(cluster, "deployment", "scaled", namespace), 60, "the Deployment")
    cluster.kubectl("scale", "inferencemodel", "scaled", "-n", namespace, "--replicas=2")
    wait_until(
        lambda: (
            (get(cluster, "deployment", "scaled", namespace) or {}).get("spec", {}).get("replicas")
            == 2
        ),
        60,
        "two replicas",
    )
    wait_until(lambda: get(cluster, "poddisruptionbudget", "scaled", namespace), 60, "a PDB")


def test_autoscaling_hands_replicas_to_an_hpa_and_back(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    autoscaled = model_manifest(
        "elastic",
        namespace,
        serving={
            "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
            "resources": {"requests": {"cpu": "1"}},
        },
    )
    apply(cluster, autoscaled)
    hpa = wait_until(lambda: get(cluster, "hpa", "elastic", namespace), 60, "the HPA")
    assert hpa["spec"]["maxReplicas"] == 5 and hpa["spec"]["scaleTargetRef"]["name"] == "elastic"
    wait_until(lambda: get(cluster, "deployment", "elastic", namespace), 60, "Deployment")
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", "elastic", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    managers = {m["manager"]: m for m in deployment["metadata"]["managedFields"]}
    assert "f:replicas" not in json.dumps(managers["kubevino"]["fieldsV1"])
    apply(cluster, model_manifest("elastic", namespace, serving={"replicas": 1}))
    wait_until(lambda: get(cluster, "hpa", "elastic", namespace) is None, 60, "HPA removed")


def test_deleting_a_model_removes_what_the_operator_made_but_not_the_users_claim(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(claim))
    apply(cluster, model_manifest("doomed", namespace))
    wait_until(lambda: get(cluster, "service", "doomed", namespace), 60, "the Service")
    handled = wait_until(lambda: _with_status(cluster, "doomed", namespace), 60, "a status")
    # No finalizer: deleting a model never waits for a running operator.
    assert not handled["metadata"].get("finalizers")
    cluster.kubectl("delete", "inferencemodel", "doomed", "-n", namespace, "--wait=true")
    for kind, name in (
        ("deployment", "doomed"),
        ("service", "doomed"),
        ("configmap", "doomed-config"),
    ):
        wait_until(_gone(cluster, kind, name, namespace), 90, f"{kind} {name} collected")
    assert get(cluster, "pvc", "models", namespace) is not None


def _with_status(cluster: ControlPlane, name: str, namespace: str) -> dict[str, Any] | None:
    model = get(cluster, "inferencemodel", name, namespace)
    return model if model is not None and model.get("status") else None


def test_a_spec_admission_cannot_check_is_reported_as_invalid(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, model_manifest("twice", namespace, device={"targetDevice": "MULTI:CPU,CPU"}))
    model = wait_for_reason(cluster, "twice", namespace, "InvalidSpec")
    assert "device CPU is listed twice" in condition(model, "Ready")["message"]
    assert get(cluster, "deployment", "twice", namespace) is None


def test_a_fetched_model_gets_its_init_container_and_a_model_loaded_condition(
    cluster: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    source = {"http": {"url": "http://models.example/classifier.tar.gz",
                       "sha256": {"1/model.bin": "ab" * 32}}}  # fmt: skip
    apply(cluster, model_manifest("fetched", namespace, model={"source": source}))
    deployment = wait_until(
        lambda: get(cluster, "deployment", "fetched", namespace), 60, "the Deployment"
    )
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetch["command"] == ["kubevino-fetch"]
    status = wait_until(
        lambda: (
            (m := get(cluster, "inferencemodel", "fetched", namespace))
            and condition(m, "ModelLoaded").get("reason") == "Fetching"
            and m
        ),
        60,
        "ModelLoaded: Fetching",
    )
    assert condition(status, "ModelLoaded")["status"] == "Unknown"
    assert condition(status, "Ready")["reason"] == "RollingOut"
