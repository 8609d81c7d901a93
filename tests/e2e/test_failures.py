"""What users hit, said in the InferenceModel's conditions and Events within about a minute,
without reading pod logs: nothing is left crash-looping silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.conftest import MODELS, Cluster
from tests.e2e.helpers import apply_model, node_model_directory

pytestmark = pytest.mark.e2e


def _apply(e2e: Cluster, name: str, path: str, **spec: Any) -> None:
    body: dict[str, Any] = {
        "model": {"name": "classifier", "source": {"hostPath": {"path": path}}},
        "device": {"targetDevice": "CPU"},
    }
    body.update(spec)
    apply_model(e2e.plane, name, MODELS, body)


def _wait_reason(e2e: Cluster, name: str, reason: str, timeout: float = 90) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        model = get(e2e.plane, "inferencemodel", name, MODELS)
        ready = condition(model, "Ready")
        return ready if ready.get("reason") == reason else None

    try:
        ready = wait_until(reached, timeout, f"{name}: Ready reason {reason}")
    finally:
        described = e2e.plane.kubectl("describe", "inferencemodel", name, "-n", MODELS).stdout
    assert ready["status"] == "False"
    degraded = condition(get(e2e.plane, "inferencemodel", name, MODELS), "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == reason
    # `kubectl describe` shows it: the condition, and a Warning Event with the same reason.
    assert reason in described
    events = json.loads(
        e2e.plane.kubectl(
            "get",
            "events",
            "-n",
            MODELS,
            "--field-selector",
            f"involvedObject.kind=InferenceModel,involvedObject.name={name},reason={reason}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert events and events[0]["type"] == "Warning"
    e2e.plane.kubectl("delete", "inferencemodel", name, "-n", MODELS, "--wait=false")
    return ready


def test_an_image_that_cannot_be_pulled(operator_installed: Cluster, tmp_path: Path) -> None:
    base = node_model_directory(operator_installed.directory / "failure-models")
    _apply(
        operator_installed,
        "no-image",
        str(base),
        serving={"image": "registry.invalid/kubevino/missing:1"},
    )
    ready = _wait_reason(operator_installed, "no-image", "ImagePullFailed")
    assert "registry.invalid/kubevino/missing:1" in ready["message"]


def test_a_model_path_without_versions_ends_in_a_stated_crash(operator_installed: Cluster) -> None:
    empty = operator_installed.directory / "empty-models"
    empty.mkdir(mode=0o755)
    _apply(operator_installed, "no-version", str(empty))
    ready = _wait_reason(operator_installed, "no-version", "ServerCrashing", timeout=150)
    assert "no version found in /models" in ready["message"]


def test_a_device_the_settings_refuse(operator_installed: Cluster) -> None:
    base = node_model_directory(operator_installed.directory / "refused-models")
    _apply(
        operator_installed,
        "refused",
        str(base),
        device={"targetDevice": "MYRIAD", "accessMode": "HostDevices"},
        serving={"runtime": "ModelServer"},
    )
    ready = _wait_reason(operator_installed, "refused", "PrivilegeNotAllowed", timeout=60)
    assert "allowPrivileged" in ready["message"]
    assert get(operator_installed.plane, "deployment", "refused", MODELS) is None


def test_a_model_host_path_that_does_not_exist(operator_installed: Cluster) -> None:
    """No container ever starts: only the kubelet's FailedMount warning says why; the
    operator's periodic recheck reads it (no pod status change would announce it)."""
    missing = operator_installed.directory / "no-such-models"
    _apply(operator_installed, "no-path", str(missing))
    ready = _wait_reason(operator_installed, "no-path", "VolumeMountFailed", timeout=150)
    assert str(missing) in ready["message"]
