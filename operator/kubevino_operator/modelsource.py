"""Pure: how each model source reaches the server's model directory.

* ``pvc`` and ``hostPath``: mounted read-only where the server reads ``<base>/<version>/``.
* ``http`` and ``s3``: ``kubevino-fetch`` (the runtime image) runs as an init container and
  fills an emptyDir, or, with ``spec.model.cache``, a directory of a shared PVC keyed by the
  source, which the server then mounts read-only. The compiled-model cache may live on the same
  PVC (``performance.modelCache.claimName`` naming it), in its ``compiled/`` directory.
* ``image``: an image volume where the cluster has them (settings ``imageVolumes``), else an
  init container running the model image copies its model directory into an emptyDir.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from kubevino_operator.api import SERVER_TASK, InferenceModel
from kubevino_operator.settings import Settings

MODEL_ROOT = "/models"
MODEL_DIR = f"{MODEL_ROOT}/model"
CONFIG_DIR = "/config"
CACHE_DIR = "/cache"
STORE_DIR = "/store"  # the shared download PVC, in the fetch container
COPY_DIR = "/kubevino-model"  # the emptyDir, in the image-copy container
FETCH_CONTAINER = "fetch-model"
COPY_CONTAINER = "copy-model"
FETCH_RETRIES = 5


@dataclass(frozen=True)
class ModelDelivery:
    """Volumes, the server's mounts and init containers that put the model in place."""

    volumes: list[dict[str, Any]] = field(default_factory=list)
    server_mounts: list[dict[str, Any]] = field(default_factory=list)
    init_containers: list[dict[str, Any]] = field(default_factory=list)
    cache_dir: bool = False  # the server gets --cache_dir CACHE_DIR


def source_kind(model: InferenceModel) -> str:
    source = model.spec.model.source
    for kind in ("pvc", "http", "s3", "host_path", "image"):
        if getattr(source, kind) is not None:
            return "hostPath" if kind == "host_path" else kind
    raise AssertionError("the API admits exactly one source")


def describe_source(model: InferenceModel) -> str:
    """The source in one phrase, as users wrote it."""
    source = model.spec.model.source
    if source.pvc is not None:
        sub = f" (subPath {source.pvc.sub_path})" if source.pvc.sub_path else ""
        return f"PVC {source.pvc.claim_name}{sub}"
    if source.host_path is not None:
        return f"hostPath {source.host_path.path}"
    if source.image is not None:
        return f"image {source.image.reference} ({source.image.path})"
    if source.http is not None:
        return source.http.url
    assert source.s3 is not None
    return source.s3.uri


def is_fetched(model: InferenceModel) -> bool:
    return model.spec.model.source.http is not None or model.spec.model.source.s3 is not None


def generative_model_dir(model: InferenceModel) -> str:
    """Where a generative model's directory is in the server container: the mounted source
    itself, or version 1 of a download (kubevino-fetch puts an archive's files without
    version folders there)."""
    return f"{MODEL_DIR}/1" if is_fetched(model) else MODEL_DIR


def gguf_filename(model: InferenceModel) -> str | None:
    """The .gguf file a TextGeneration model serves, where the spec says: spec.model.ggufFile,
    or the file an http URL names (kubevino-fetch keeps a bare file's name, as version 1)."""
    if model.spec.model.task != "TextGeneration":
        return None
    if model.spec.model.gguf_file is not None:
        return model.spec.model.gguf_file
    http = model.spec.model.source.http
    if http is None:
        return None
    name = PurePosixPath(unquote(urlparse(http.url).path)).name  # as kubevino-fetch names it
    return name if name.lower().endswith(".gguf") else None


def checksums(model: InferenceModel) -> dict[str, str] | None:
    source = model.spec.model.source
    given = source.http.sha256 if source.http else source.s3.sha256 if source.s3 else None
    return dict(sorted(given.items())) if given else None


def store_key(model: InferenceModel) -> str:
    """The shared-cache directory of this source: same source, same directory."""
    source = model.spec.model.source
    chosen = source.http or source.s3
    assert chosen is not None
    wire = json.dumps(chosen.model_dump(mode="json", exclude_none=True), sort_keys=True)
    return hashlib.sha256(wire.encode()).hexdigest()[:16]


def _compiled_on_store(model: InferenceModel) -> bool:
    cache = model.spec.performance.model_cache if model.spec.performance else None
    store = model.spec.model.cache
    return bool(
        cache and cache.enabled and store and is_fetched(model)
        and cache.claim_name == store.claim_name
    )  # fmt: skip


def _compiled_cache(model: InferenceModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    performance = model.spec.performance
    cache = performance.model_cache if performance else None
    if cache is None or not cache.enabled:
        return [], []
    if _compiled_on_store(model):
        return [], [{"name": "model-store", "mountPath": CACHE_DIR, "subPath": "compiled"}]
    volume: dict[str, Any]
    if cache.claim_name:
        volume = {"name": "model-cache", "persistentVolumeClaim": {"claimName": cache.claim_name}}
    else:
        empty: dict[str, Any] = {}
        if cache.size_limit is not None:
            empty["sizeLimit"] = str(cache.size_limit)
        volume = {"name": "model-cache", "emptyDir": empty}
    return [volume], [{"name": "model-cache", "mountPath": CACHE_DIR}]


def _fetch_container(
    model: InferenceModel, settings: Settings, security: dict[str, Any], model_server: bool
) -> dict[str, Any]:
    """``model_server``: the ModelServer runtime serves the model."""
    source = model.spec.model.source
    store = model.spec.model.cache
    dest = f"{STORE_DIR}/models/{store_key(model)}" if store else MODEL_DIR
    mounts: list[dict[str, Any]] = [
        {"name": "model-store", "mountPath": STORE_DIR}
        if store
        else {"name": "model", "mountPath": MODEL_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    env: list[dict[str, Any]] = []
    if source.http is not None:
        args = ["--url", source.http.url]
    else:
        s3 = source.s3
        assert s3 is not None
        args = ["--s3-uri", s3.uri]
        if s3.endpoint:
            args += ["--s3-endpoint", s3.endpoint]
        if s3.region:
            args += ["--s3-region", s3.region]
        if not s3.verify_tls:
            args.append("--no-verify-tls")
        if s3.secret_ref is not None:
            for key, optional in (
                ("AWS_ACCESS_KEY_ID", False),
                ("AWS_SECRET_ACCESS_KEY", False),
                ("AWS_SESSION_TOKEN", True),
            ):
                ref: dict[str, Any] = {"name": s3.secret_ref.name, "key": key}
                if optional:
                    ref["optional"] = True
                env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    args += ["--dest", dest, "--retries", str(FETCH_RETRIES)]
    if model.spec.model.task != "Tensor":
        # The fetch checks version 1 is what the server will read: InvalidModel otherwise.
        args += ["--task", SERVER_TASK[model.spec.model.task]]
        gguf = gguf_filename(model)
        if gguf is not None:
            args += ["--gguf-filename", gguf]
        elif model_server and model.spec.model.task == "TextGeneration":
            # Model Server reads an unnamed .gguf as nothing: the fetch says so, with the fix.
            args.append("--gguf-named-only")
    if checksums(model):
        args += ["--sha256-file", f"{CONFIG_DIR}/sha256.json"]
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    if _compiled_on_store(model):
        args += ["--make-dir", f"{STORE_DIR}/compiled"]
    container: dict[str, Any] = {
        "name": FETCH_CONTAINER,
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["kubevino-fetch"],
        "args": args,
        "volumeMounts": mounts,
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env:
        container["env"] = env
    return container


def _copy_container(
    model: InferenceModel, settings: Settings, security: dict[str, Any]
) -> dict[str, Any]:
    image = model.spec.model.source.image
    assert image is not None
    return {
        "name": COPY_CONTAINER,
        "image": image.reference,
        "imagePullPolicy": settings.image_pull_policy,
        # The model image's own cp (busybox, distroless-debug, any distro base).
        "command": ["cp", "-R", f"{image.path.rstrip('/')}/.", COPY_DIR],
        "volumeMounts": [{"name": "model", "mountPath": COPY_DIR}],
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def model_delivery(
    model: InferenceModel,
    settings: Settings,
    init_security: dict[str, Any],
    model_server: bool = False,
) -> ModelDelivery:
    """``model_server``: the ModelServer runtime serves the model (its fetch check differs)."""
    source = model.spec.model.source
    mount: dict[str, Any] = {"name": "model", "mountPath": MODEL_DIR, "readOnly": True}
    volumes: list[dict[str, Any]] = []
    init: list[dict[str, Any]] = []
    if source.pvc is not None:
        volumes.append(
            {
                "name": "model",
                "persistentVolumeClaim": {"claimName": source.pvc.claim_name, "readOnly": True},
            }
        )
        if source.pvc.sub_path:
            mount["subPath"] = source.pvc.sub_path
    elif source.host_path is not None:
        volumes.append(
            {"name": "model", "hostPath": {"path": source.host_path.path, "type": "Directory"}}
        )
    elif source.image is not None:
        if settings.image_volumes:
            volumes.append(
                {
                    "name": "model",
                    "image": {"reference": source.image.reference, "pullPolicy": "IfNotPresent"},
                }
            )
            mount["subPath"] = source.image.path.lstrip("/")
        else:
            volumes.append({"name": "model", "emptyDir": {}})
            init.append(_copy_container(model, settings, init_security))
    elif model.spec.model.cache is not None:
        volumes.append(
            {
                "name": "model-store",
                "persistentVolumeClaim": {"claimName": model.spec.model.cache.claim_name},
            }
        )
        mount = {
            "name": "model-store",
            "mountPath": MODEL_DIR,
            "subPath": f"models/{store_key(model)}",
            "readOnly": True,
        }
        init.append(_fetch_container(model, settings, init_security, model_server))
    else:
        volumes.append({"name": "model", "emptyDir": {}})
        init.append(_fetch_container(model, settings, init_security, model_server))
    cache_volumes, cache_mounts = _compiled_cache(model)
    return ModelDelivery(
        volumes=volumes + cache_volumes,
        server_mounts=[mount, *cache_mounts],
        init_containers=init,
        cache_dir=bool(cache_mounts),
    )
