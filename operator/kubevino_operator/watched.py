"""What the operator's watches saw, kept in memory: the models that exist (with their Ready
status and resourceVersion) and each model's pods.

kopf fills these indexes from the watch streams it keeps anyway and has them complete before
any handler runs, so reading them costs the API server nothing: a status refresh that listed a
model's pods would make the API server filter every pod of the namespace, once per refresh of
every model.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import kopf

from kubevino_operator import api
from kubevino_operator.render import INSTANCE_LABEL
from kubevino_operator.status import READY

ModelKey = tuple[str, str]  # (namespace, name)
MANAGED = {"app.kubernetes.io/managed-by": "kubevino"}
# The Deployment controller's label: pods of one pod template share its value.
TEMPLATE_HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True)
class ModelSeen:
    ready: str  # the Ready condition's status, "" before the first status
    resource_version: str


def resource_version(obj: kopf.Body | dict[str, Any]) -> str:
    return str(obj["metadata"].get("resourceVersion", ""))


def ready_status(body: kopf.Body | dict[str, Any]) -> str:
    conditions = (body.get("status") or {}).get("conditions") or []
    return str(next((c.get("status", "") for c in conditions if c.get("type") == READY), ""))


def model_entry(body: kopf.Body | dict[str, Any]) -> dict[ModelKey, ModelSeen]:
    meta = body["metadata"]
    seen = ModelSeen(ready_status(body), resource_version(body))
    return {(meta["namespace"], meta["name"]): seen}


# The index handlers are coroutines, though they never wait: kopf runs a plain function in a
# thread of its executor, a hop there and back for every event of every model and pod.
@kopf.index(api.GROUP, api.VERSION, api.PLURAL)
async def known_models(body: kopf.Body, **_: Any) -> dict[ModelKey, ModelSeen]:
    return model_entry(body)


def pod_view(body: kopf.Body | dict[str, Any]) -> dict[str, Any]:
    """What the status needs of a pod (podhealth, podreports and claimhealth read no more),
    not the whole pod."""
    meta = body["metadata"]
    kept: dict[str, Any] = {"name": meta["name"], "uid": meta.get("uid", "")}
    template = (meta.get("labels") or {}).get(TEMPLATE_HASH_LABEL)
    if template:
        kept["labels"] = {TEMPLATE_HASH_LABEL: template}
    if meta.get("deletionTimestamp"):
        kept["deletionTimestamp"] = meta["deletionTimestamp"]
    spec = body.get("spec") or {}
    kept_spec: dict[str, Any] = {"nodeName": spec.get("nodeName", "")}
    if spec.get("resourceClaims"):
        kept_spec["resourceClaims"] = list(spec["resourceClaims"])  # the claims it names
    return {"metadata": kept, "spec": kept_spec, "status": dict(body.get("status") or {})}


def pod_entry(body: kopf.Body | dict[str, Any]) -> dict[ModelKey, dict[str, Any]]:
    name = (body["metadata"].get("labels") or {}).get(INSTANCE_LABEL)
    return {(body["metadata"]["namespace"], name): pod_view(body)} if name else {}


@kopf.index("", "v1", "pods", labels=MANAGED)
async def model_pods(body: kopf.Body, **_: Any) -> dict[ModelKey, dict[str, Any]]:
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


class OwnerCopies:
    """Each model as the operator last read or wrote it, and the versions it knows are older.

    A copy is current while the watch has seen no other version of the model than it or one
    older: the watch lags behind the operator's own status writes, and a version it has not
    caught up with yet is no reason to read the model again.
    """

    KEEP = 8

    def __init__(self) -> None:
        self._copies: dict[ModelKey, dict[str, Any]] = {}
        self._older: dict[ModelKey, deque[str]] = {}

    def remember(self, key: ModelKey, owner: dict[str, Any]) -> None:
        previous = self._copies.get(key)
        if previous is not None:
            older = self._older.setdefault(key, deque(maxlen=self.KEEP))
            older.append(resource_version(previous))
        self._copies[key] = owner

    def offer(self, key: ModelKey, owner: dict[str, Any]) -> None:
        """Keep ``owner`` unless it is the kept copy or a version known to be older than it
        (kopf may hand over a model as it was before the operator's own last write)."""
        version = resource_version(owner)
        copy = self._copies.get(key)
        known = () if copy is None else (resource_version(copy),)
        if version in known or version in self._older.get(key, ()):
            return
        self.remember(key, owner)

    def current(self, key: ModelKey, seen: ModelSeen | None) -> dict[str, Any] | None:
        copy = self._copies.get(key)
        if copy is None or seen is None:
            return None
        if seen.resource_version == resource_version(copy):
            return copy
        return copy if seen.resource_version in self._older.get(key, ()) else None

    def forget(self, key: ModelKey) -> None:
        self._copies.pop(key, None)
        self._older.pop(key, None)

    def keys(self) -> set[ModelKey]:
        return set(self._copies)
