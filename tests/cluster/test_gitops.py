"""GitOps examples: the kustomize overlays build with real kubectl into models kubevino renders;
the Argo CD and Flux manifests point at paths that exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevino_devcluster.controlplane import REPO, kube_binaries
from kubevino_operator.api import InferenceModel
from kubevino_operator.render import Rendered, render
from tests.unit.builders import example_settings

pytestmark = pytest.mark.cluster
GITOPS = REPO / "examples" / "gitops"


def kustomize(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(kube_binaries() / "kubectl"), "kustomize", str(GITOPS / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize(
    ("overlay", "namespace", "target", "replicas"),
    [("dev", "ml-dev", "CPU", 1), ("prod", "ml-prod", "AUTO:GPU,CPU", 2)],
)
def test_overlays_change_the_target_device_per_environment(
    overlay: str, namespace: str, target: str, replicas: int
) -> None:
    (document,) = kustomize(overlay)
    model = InferenceModel.model_validate(document)
    assert model.metadata.namespace == namespace
    assert model.spec.device.target_device == target
    assert model.spec.serving.replicas == replicas
    assert isinstance(render(model, example_settings()), Rendered)


def test_argo_cd_and_flux_manifests_point_at_real_paths() -> None:
    for name in ("argocd.yaml", "flux.yaml"):
        for document in yaml.safe_load_all((GITOPS / name).read_text()):
            source = document["spec"].get("source") or {}
            chart = ((document["spec"].get("chart") or {}).get("spec") or {}).get("chart")
            for path in (source.get("path"), document["spec"].get("path"), chart):
                if isinstance(path, str):
                    assert (REPO / Path(path)).exists(), f"{name}: {path}"
