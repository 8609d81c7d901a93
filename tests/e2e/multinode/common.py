"""What the multi-node tests share: models on the bundled classifier, their pods, waiting."""

from __future__ import annotations

import json
from typing import Any

from kubevino_devcluster.cluster import DevCluster
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.helpers import apply_model
from tests.e2e.multinode.conftest import MODELS, Installed

MODEL_LABEL = "kubevino.io/inference-model"


def apply(
    installed: Installed,
    name: str,
    target: str,
    replicas: int = 1,
    node_selector: dict[str, str] | None = None,
    access_mode: str = "HostDevices",
) -> None:
    """An InferenceModel serving the bundled classifier from the hosts' filesystem."""
    device: dict[str, Any] = {"targetDevice": target}
    if target != "CPU":
        device["accessMode"] = access_mode
    serving: dict[str, Any] = {"image": installed.cluster.images["runtime"], "replicas": replicas}
    if node_selector:
        serving["nodeSelector"] = node_selector
    model = {"name": "classifier", "source": {"hostPath": {"path": str(installed.models)}}}
    apply_model(
        installed.cluster.plane,
        name,
        MODELS,
        {"model": model, "device": device, "serving": serving},
    )


def pods(cluster: DevCluster, model: str) -> list[dict[str, Any]]:
    """The model's pods that are not on their way out."""
    listed = cluster.plane.kubectl(
        "get", "pods", "-n", MODELS, "-l", f"{MODEL_LABEL}={model}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def ready(cluster: DevCluster, name: str, timeout: float = 240) -> dict[str, Any]:
    """The model once Ready=True; its description printed when it never gets there."""

    def reached() -> dict[str, Any] | None:
        model = get(cluster.plane, "inferencemodel", name, MODELS)
        return model if condition(model, "Ready").get("status") == "True" else None

    try:
        return wait_until(reached, timeout, f"{name} Ready")
    except AssertionError:
        print(cluster.plane.kubectl("describe", "inferencemodel", name, "-n", MODELS).stdout)
        print(cluster.plane.kubectl("get", "pods", "-n", MODELS, "-o", "wide").stdout)
        raise


def delete_models(cluster: DevCluster, *names: str) -> None:
    """The models and their pods gone (the next test starts from a quiet cluster)."""
    for name in names:
        cluster.plane.kubectl("delete", "inferencemodel", name, "-n", MODELS, check=False)
    for name in names:
        cluster.plane.kubectl(
            "wait", "--for=delete", "pods", "-n", MODELS, "-l", f"{MODEL_LABEL}={name}",
            "--timeout=120s", check=False, timeout=150,
        )  # fmt: skip


def node_labels(cluster: DevCluster, node: str) -> dict[str, str]:
    found = json.loads(cluster.plane.kubectl("get", "node", node, "-o", "json").stdout)
    labels: dict[str, str] = found["metadata"].get("labels") or {}
    return labels
