"""Small builders that keep the specifications in the tests short."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from kubevino_operator.api import InferenceModel
from kubevino_operator.render import Rendered, render
from kubevino_operator.resolve import Refusal
from kubevino_operator.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_SETTINGS = EXAMPLES / "settings.yaml"


def example_paths() -> list[Path]:
    return sorted(path for path in EXAMPLES.glob("*.yaml") if path != EXAMPLE_SETTINGS)


def example_settings() -> Settings:
    return load_settings(EXAMPLE_SETTINGS)


def load_model(path: Path) -> InferenceModel:
    return InferenceModel.model_validate(yaml.safe_load(path.read_text()))


def model(name: str = "resnet", **spec: Any) -> InferenceModel:
    """An InferenceModel serving a PVC model; keyword arguments are spec sections (wire form)."""
    body: dict[str, Any] = {"model": {"source": {"pvc": {"claimName": "models"}}}}
    body.update(spec)
    return InferenceModel.model_validate(
        {
            "apiVersion": "kubevino.io/v1alpha1",
            "kind": "InferenceModel",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": body,
        }
    )


def settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


def rendered(subject: InferenceModel, with_settings: Settings | None = None) -> Rendered:
    result = render(subject, with_settings or settings(renderGroupId=110))
    assert not isinstance(result, Refusal), result
    return result


def refusal(subject: InferenceModel, with_settings: Settings | None = None) -> Refusal:
    result = render(subject, with_settings or settings(renderGroupId=110))
    assert isinstance(result, Refusal), "expected a refusal"
    return result


def find(result: Rendered, kind: str) -> dict[str, Any]:
    matches = [obj for obj in result.objects if obj["kind"] == kind]
    assert len(matches) == 1, f"{len(matches)} objects of kind {kind}"
    return matches[0]


def pod_spec(result: Rendered) -> dict[str, Any]:
    spec: dict[str, Any] = find(result, "Deployment")["spec"]["template"]["spec"]
    return spec


def server(result: Rendered) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(result)["containers"][0]
    assert container["name"] == "server"
    return container


def mounts(result: Rendered) -> dict[str, dict[str, Any]]:
    """Container mount path → {mount, volume}."""
    volumes = {volume["name"]: volume for volume in pod_spec(result)["volumes"]}
    return {
        mount["mountPath"]: {"mount": mount, "volume": volumes[mount["name"]]}
        for mount in server(result)["volumeMounts"]
    }


def model_server_config(result: Rendered) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(find(result, "ConfigMap")["data"]["config.json"])
    entry: dict[str, Any] = config["model_config_list"][0]["config"]
    return entry
