"""What the operator's watches saw, kept in memory: the models that exist (with their Ready
status and resourceVersion) and each model's pods.

kopf fills these indexes from the watch streams it keeps anyway and has them complete before
any handler runs, so reading them costs the API server nothing: a status refresh that listed a
model's pods would make the API server filter every pod of the namespace, once per refresh of
every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf

from kubevino_operator import api
from kubevino_operator.render import INSTANCE_LABEL

ModelKey = tuple[str, str]  # (namespace, name)
MANAGED = {"app.kubernetes.io/managed-by": "kubevino"}


@dataclass(frozen=True)
class ModelSeen:
    ready: str  # the Ready condition's status, "" before the first status
    resource_version: str


def ready_status(body: kopf.Body | dict[str, Any]) -> str:
    conditions = (body.get("status") or {}).get("conditions") or []
    return str(next((c.get("status", "") for c in conditions if c.get("type") == "Ready"), ""))


def model_entry(body: kopf.Body | dict[str, Any]) -> dict[ModelKey, ModelSeen]:
    meta = body["metadata"]
    seen = ModelSeen(ready_status(body), str(meta.get("resourceVersion", "")))
    return {(meta["namespace"], meta["name"]): seen}


@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
def known_models(body: kopf.Body, **_: Any) -> dict[ModelKey, ModelSeen]:
    return model_entry(body)


def pod_view(body: kopf.Body | dict[str, Any]) -> dict[str, Any]:
    """What the status needs of a pod (podhealth reads no more), not the whole pod."""
    meta = body["metadata"]
    kept = {"name": meta["name"], "uid": meta.get("uid", "")}
    if meta.get("deletionTimestamp"):
        kept["deletionTimestamp"] = meta["deletionTimestamp"]
    return {
        "metadata": kept,
        "spec": {"nodeName": (body.get("spec") or {}).get("nodeName", "")},
        "status": dict(body.get("status") or {}),
    }


def pod_entry(body: kopf.Body | dict[str, Any]) -> dict[ModelKey, dict[str, Any]]:
    name = (body["metadata"].get("labels") or {}).get(INSTANCE_LABEL)
    return {(body["metadata"]["namespace"], name): pod_view(body)} if name else {}


@kopf.index("", "v1", "pods", labels=MANAGED)
def model_pods(body: kopf.Body, **_: Any) -> dict[ModelKey, dict[str, Any]]:
    return pod_entry(body)


class Watched:
    """The two indexes, handed over by kopf at start-up."""

    models: kopf.Index[ModelKey, ModelSeen] | None = None
    pods: kopf.Index[ModelKey, dict[str, Any]] | None = None

    @classmethod
    def attach(cls, handler_kwargs: dict[str, Any]) -> None:
        cls.models = handler_kwargs["known_models"]
        cls.pods = handler_kwargs["model_pods"]

    @classmethod
    def model(cls, key: ModelKey) -> ModelSeen | None:
        if cls.models is None or key not in cls.models:
            return None
        return next(iter(cls.models[key]), None)

    @classmethod
    def all_models(cls) -> dict[ModelKey, ModelSeen]:
        if cls.models is None:
            return {}
        return {key: seen for key, store in cls.models.items() for seen in store}

    @classmethod
    def pods_of(cls, key: ModelKey) -> list[dict[str, Any]]:
        if cls.pods is None or key not in cls.pods:
            return []
        return list(cls.pods[key])
