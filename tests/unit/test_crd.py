"""The CRD is generated from the models, current in crds/, and helpful to kubectl users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kubevino_operator.crd import crd_yaml, custom_resource_definition, openapi_schema
from tests.unit.builders import REPO, example_paths

CRD_FILE = REPO / "crds" / "inferencemodels.kubevino.io.yaml"


def test_crds_directory_holds_exactly_what_the_models_generate() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), (
        "crds/ drifted from kubevino_operator/api.py: run `kubevino crd > " + str(CRD_FILE) + "`"
    )


def _properties(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, child in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", child
        yield from _properties(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, dict):
            yield from _properties(child, f"{path}[]")


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undocumented = [
        path
        for path, schema in _properties(openapi_schema(), "")
        if not schema.get("description") and path != ".metadata"  # the server's own schema
    ]
    assert undocumented == []


def test_the_schema_is_structural() -> None:
    for path, schema in _properties(openapi_schema(), ""):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & set(schema), path
        typed = "type" in schema or schema.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"
        if schema.get("type") == "object":
            assert schema.get("additionalProperties") is not False, path


def test_the_crd_is_a_valid_custom_resource_definition() -> None:
    kubernetes_validate.validate(custom_resource_definition(), "1.34.0", strict=True)


def test_status_scale_and_printer_columns() -> None:
    version = custom_resource_definition()["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.serving.replicas"
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns["Target"] == ".spec.device.targetDevice"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert {"Replicas", "Reason", "Age"} <= set(columns)
    assert columns["Task"] == ".spec.model.task"


def test_task_defaults_to_tensor_so_existing_objects_keep_their_meaning_and_their_column() -> None:
    model = openapi_schema()["properties"]["spec"]["properties"]["model"]
    assert model["properties"]["task"]["default"] == "Tensor"
    assert model["properties"]["task"]["enum"] == [
        "Tensor",
        "TextGeneration",
        "Embeddings",
        "Rerank",
    ]


def test_serving_is_defaulted_so_the_scale_subresource_always_finds_replicas() -> None:
    spec = openapi_schema()["properties"]["spec"]["properties"]
    assert spec["serving"]["default"] == {}
    assert spec["serving"]["properties"]["replicas"]["default"] == 1


@pytest.mark.parametrize("path", example_paths(), ids=lambda path: path.name)
def test_every_example_satisfies_the_crd_schema(path: Any) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), openapi_schema())


def test_the_charts_crd_is_the_generated_one() -> None:
    chart_copy = REPO / "charts" / "kubevino" / "crds" / CRD_FILE.name
    assert chart_copy.read_text() == crd_yaml(), f"copy {CRD_FILE} to {chart_copy}"
