"""The CRD on a real API server: bad specs are refused at the door with messages that say
what is wrong, and kubectl shows useful columns and field documentation."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import REPO, ControlPlane
from tests.cluster.conftest import model_manifest

pytestmark = pytest.mark.cluster

REFUSED = [
    ({"device": {"targetDevice": "MULTI:"}}, "targetDevice must follow OpenVINO's grammar"),
    ({"device": {"targetDevice": "GPU("}}, "targetDevice must follow OpenVINO's grammar"),
    ({"device": {"targetDevice": "AUTO:-"}}, "targetDevice must follow OpenVINO's grammar"),
    ({"device": {"targetDevice": "AUTO:GPU,MULTI"}}, "targetDevice misuses a virtual device"),
    (
        {"performance": {"hint": "THROUGHPUT", "numStreams": 4}},
        "a performance hint and NUM_STREAMS must not be used together",
    ),
    (
        {"performance": {"hint": "LATENCY", "pluginConfig": {"NUM_STREAMS": "2"}}},
        "a performance hint and NUM_STREAMS must not be used together",
    ),
    ({"serving": {"replicas": -1}}, "spec.serving.replicas: Invalid value: -1"),
    (
        {"performance": {"batchSize": 4, "dynamicBatching": {"maxBatchSize": 8}}},
        "dynamicBatching joins requests along a dynamic batch dimension, which batchSize fixes",
    ),
    (
        {"performance": {"dynamicBatching": {"maxBatchSize": 1, "maxDelayMicroseconds": 100}}},
        "maxBatchSize 1 turns batching off",
    ),
    (
        {
            "model": {"source": {"pvc": {"claimName": "m"}}, "task": "Embeddings"},
            "performance": {"dynamicBatching": {"maxBatchSize": 8}},
        },
        "a generative pipeline sizes and batches itself",
    ),
    (
        {"device": {"targetDevice": "GPU"}, "performance": {"hint": "CUMULATIVE_THROUGHPUT"}},
        "hint CUMULATIVE_THROUGHPUT needs an AUTO or MULTI targetDevice",
    ),
    (
        {"device": {"targetDevice": "MYRIAD"}, "serving": {"runtime": "Kubevino"}},
        "MYRIAD, HDDL and NVIDIA are not in current OpenVINO",
    ),
    ({"model": {"source": {}}}, "model.source must set exactly one of"),
    (
        {
            "serving": {
                "autoscaling": {"minReplicas": 3, "maxReplicas": 2},
                "resources": {"requests": {"cpu": "1"}},
            }
        },
        "autoscaling.minReplicas must not exceed maxReplicas",
    ),
    (
        {
            "model": {"source": {"pvc": {"claimName": "m"}}, "task": "Embeddings"},
            "generation": {"textGeneration": {"maxConcurrentSequences": 8}},
        },
        "generation.textGeneration applies to spec.model.task TextGeneration only",
    ),
    (
        {
            "model": {"source": {"pvc": {"claimName": "m"}}, "task": "TextGeneration"},
            "device": {"targetDevice": "MULTI:GPU,CPU"},
        },
        "generative tasks run on OpenVINO GenAI",
    ),
    (
        {
            "model": {"source": {"pvc": {"claimName": "m"}}, "task": "TextGeneration"},
            "device": {"targetDevice": "NPU"},
        },
        "text generation on NPU runs a static pipeline compiled for fixed lengths",
    ),
]


@pytest.mark.parametrize(("spec", "message"), REFUSED)
def test_bad_specs_are_refused_by_kubectl_apply_with_a_clear_message(
    cluster: ControlPlane, namespace: str, spec: dict[str, Any], message: str
) -> None:
    manifest = model_manifest("bad", namespace, **spec)
    done = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def _applied_example(
    cluster: ControlPlane, namespace: str, example: str, field: str
) -> tuple[dict[str, Any], str]:
    """Apply an example into ``namespace``; return it and ``field`` as the API server kept it."""
    manifest = yaml.safe_load((REPO / "examples" / f"{example}.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    kept = cluster.kubectl(
        "get", "im", manifest["metadata"]["name"], "-n", namespace,
        "-o", f"jsonpath={{{field}}}",
    ).stdout  # fmt: skip
    return manifest, kept


def test_every_generative_example_is_admitted(cluster: ControlPlane, namespace: str) -> None:
    for example in ("text-generation", "embeddings", "rerank", "text-generation-npu"):
        manifest, task = _applied_example(cluster, namespace, example, ".spec.model.task")
        assert task == manifest["spec"]["model"]["task"]


def test_the_dynamic_batching_example_is_admitted_with_its_settings(
    cluster: ControlPlane, namespace: str
) -> None:
    _, kept = _applied_example(
        cluster,
        namespace,
        "cpu-dynamic-batching",
        ".spec.performance.dynamicBatching.maxBatchSize",
    )
    assert kept == "8"


def test_a_name_that_cannot_be_a_service_name_is_refused(
    cluster: ControlPlane, namespace: str
) -> None:
    done = cluster.kubectl(
        "apply", "-f", "-", check=False, stdin=yaml.safe_dump(model_manifest("1model", namespace))
    )
    assert done.returncode != 0 and "metadata.name becomes the Service's name" in done.stderr


def test_defaults_are_filled_in_by_the_api_server(cluster: ControlPlane, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(model_manifest("plain", namespace)))
    stored = yaml.safe_load(
        cluster.kubectl("get", "inferencemodel", "plain", "-n", namespace, "-o", "yaml").stdout
    )
    assert stored["spec"]["device"]["targetDevice"] == "CPU"
    assert stored["spec"]["serving"]["replicas"] == 1
    assert stored["spec"]["serving"]["runtime"] == "Auto"


def test_kubectl_explain_documents_the_fields(cluster: ControlPlane) -> None:
    explained = cluster.kubectl("explain", "inferencemodel.spec.device").stdout
    assert "OpenVINO target_device" in explained
    assert "accessMode" in explained and "DevicePlugin" in explained


def test_kubectl_get_shows_target_task_ready_replicas_reason_and_devices(
    cluster: ControlPlane, namespace: str
) -> None:
    manifest = model_manifest("columns", namespace, device={"targetDevice": "AUTO:GPU,CPU"})
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    header = cluster.kubectl("get", "im", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "TARGET", "TASK", "READY", "REPLICAS", "REASON", "DEVICES", "AGE"]
    row = cluster.kubectl("get", "inferencemodels", "-n", namespace).stdout.splitlines()[1]
    assert "AUTO:GPU,CPU" in row
    assert row.split()[2] == "Tensor"
