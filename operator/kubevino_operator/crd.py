"""Generate the InferenceModel CRD from the pydantic models (never edit crds/ by hand)."""

from __future__ import annotations

import copy
from typing import Any

from kubevino_operator import api
from kubevino_operator.celrules import ApiModel
from kubevino_operator.yamlio import dump_document

_DROPPED_KEYS = {"title", "additionalProperties", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn pydantic's JSON schema into a Kubernetes structural schema.

    Inline ``$ref``s, fold ``Optional`` (``anyOf [X, null]``) into ``X``, drop titles and null
    defaults, and keep ``additionalProperties`` only where it describes map values.
    """
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        if "description" in node:
            target["description"] = node["description"]
        target.update({k: v for k, v in node.items() if k != "description"})
        node = target
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        non_null = [option for option in any_of if option != {"type": "null"}]
        if len(non_null) == 1:
            del node["anyOf"]
            inner = _structural(non_null[0], defs)
            node = {
                **inner,
                **{k: v for k, v in node.items() if k not in inner or k == "description"},
            }
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            result[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            result[key] = _structural(value, defs)
        else:
            result[key] = value
    if result.get("x-kubernetes-preserve-unknown-fields") and "type" not in result:
        result["type"] = "object"
    if result.get("type") == "object" and "properties" in result and not result["properties"]:
        del result["properties"]
    return _ordered(result)


_KEY_ORDER = ("description", "type", "format", "enum", "default")


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    """A stable, readable key order: description and type first, then alphabetical."""
    first = [key for key in _KEY_ORDER if key in schema]
    rest = sorted(key for key in schema if key not in _KEY_ORDER)
    return {key: schema[key] for key in first + rest}


def _schema_of(model: type[ApiModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return dict(_structural(raw, raw.get("$defs", {})))


def openapi_schema() -> dict[str, Any]:
    spec = _schema_of(api.InferenceModelSpec)
    status = _schema_of(api.InferenceModelStatus)
    return {
        "description": "InferenceModel serves an OpenVINO model on Kubernetes: kubevino turns "
        "it into a Deployment, Service and config with the device access its targetDevice needs.",
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion of this object: kubevino.io/v1alpha1.",
                "type": "string",
            },
            "kind": {"description": "Kind of this object: InferenceModel.", "type": "string"},
            # The API server allows nothing but the type here (metadata is its own).
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.matches('{api.NAME_PATTERN}') && "
                f"size(self.metadata.name) <= {api.NAME_MAX_LENGTH}",
                "message": "metadata.name becomes the Service's name: at most "
                f"{api.NAME_MAX_LENGTH} characters, lower case letters, digits and '-', "
                "starting with a letter",
            }
        ],
    }


PRINTER_COLUMNS = [
    {
        "name": "Target",
        "type": "string",
        "jsonPath": ".spec.device.targetDevice",
        "description": "OpenVINO target device.",
    },
    {
        "name": "Task",
        "type": "string",
        "jsonPath": ".spec.model.task",
        "description": "What the model does: Tensor (KServe v2), or a generative task served "
        "over the OpenAI-compatible API.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the model serves.",
    },
    {
        "name": "Replicas",
        "type": "integer",
        "jsonPath": ".status.readyReplicas",
        "description": "Pods that serve.",
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why Ready is what it is.",
    },
    {
        "name": "Devices",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="DeviceAccess")].reason',
        "description": "Whether the pods can use their devices (DeviceAccess's reason).",
    },
    {
        "name": "Model",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="ModelLoaded")].reason',
        "priority": 1,
        "description": "Whether the model reached the server (ModelLoaded's reason).",
    },
    {
        "name": "Accelerators",
        "type": "string",
        "jsonPath": ".status.accelerators",
        "priority": 1,
        "description": "Accelerator profiles in use.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def custom_resource_definition() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubevino"},
        },
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["all", "kubevino"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.serving.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated by `kubevino crd` from kubevino_operator/api.py; do not edit.\n"
    return header + dump_document(custom_resource_definition())
