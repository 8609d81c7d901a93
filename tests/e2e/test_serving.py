"""From `helm install` to answers: the chart's operator (our operator image) turns a CPU
InferenceModel into a serving pod on a real kubelet; Ready means it answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import openvino as ov
import pytest
import yaml

from kubevino_runtime.demo_model import sample_input
from tests.e2e.conftest import MODELS, Cluster
from tests.e2e.helpers import node_model_directory, port_forward, run_clients

pytestmark = pytest.mark.e2e


def _model(name: str, path: str, **spec: Any) -> str:
    body: dict[str, Any] = {
        "model": {"name": "classifier", "source": {"hostPath": {"path": path}}},
        "device": {"targetDevice": "CPU"},
        "performance": {"hint": "LATENCY"},
    }
    body.update(spec)
    return yaml.safe_dump(
        {
            "apiVersion": "kubevino.io/v1alpha1",
            "kind": "InferenceModel",
            "metadata": {"name": name, "namespace": MODELS},
            "spec": body,
        }
    )


def test_a_cpu_model_serves_real_clients_once_ready(operator_installed: Cluster) -> None:
    e2e = operator_installed
    base = node_model_directory(e2e.directory / "node-models")
    e2e.plane.kubectl("apply", "-f", "-", stdin=_model("classifier", str(base)))
    waited = e2e.plane.kubectl(
        "wait", "--for=condition=Ready", "inferencemodel/classifier", "-n", MODELS,
        "--timeout=300s", check=False, timeout=330,
    )  # fmt: skip
    assert waited.returncode == 0, (
        waited.stderr
        + e2e.plane.kubectl("describe", "inferencemodel", "-n", MODELS, check=False).stdout
        + e2e.plane.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
    )
    # Ready was just observed: the model must answer now, not eventually.
    with port_forward(e2e.plane, MODELS, "service/classifier", 8000, 9000) as (rest, grpc):
        answers = run_clients(f"127.0.0.1:{rest}", f"127.0.0.1:{grpc}", "classifier")
    compiled = ov.Core().compile_model(str(base / "1" / "model.xml"), "CPU")
    expected: npt.NDArray[Any] = compiled(sample_input())[0]
    np.testing.assert_array_equal(np.array(answers["kserve_rest"], dtype=np.float32), expected)
    np.testing.assert_array_equal(np.array(answers["kserve_grpc"], dtype=np.float32), expected)
    np.testing.assert_allclose(np.array(answers["tf_serving"]), expected, rtol=1e-6)
    assert answers["metadata"]["name"] == "classifier"
