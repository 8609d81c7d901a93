"""How each model source reaches the server, and the ModelLoaded condition that says so."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubevino_operator.modelstatus import model_loaded
from kubevino_operator.podhealth import diagnose, fetch_report
from kubevino_operator.render import Rendered
from tests.unit.builders import model, rendered, settings


def _pod(result: Rendered) -> dict[str, Any]:
    deployment = next(o for o in result.objects if o["kind"] == "Deployment")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _mount(pod: dict[str, Any], path: str) -> dict[str, Any]:
    return next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path)


HTTP = {"http": {"url": "https://models.example/classifier.tar.gz",
                 "sha256": {"1/model.bin": "ab" * 32}}}  # fmt: skip
S3 = {
    "s3": {
        "uri": "s3://models/vision/classifier",
        "endpoint": "http://minio.store:9000",
        "secretRef": {"name": "s3-keys"},
    }
}


def test_http_is_fetched_into_an_emptydir_with_checksums_from_the_config_map() -> None:
    pod = _pod(rendered(model(model={"source": HTTP})))
    (fetch,) = pod["initContainers"]
    assert fetch["command"] == ["kubevino-fetch"]
    assert fetch["args"] == [
        "--url", "https://models.example/classifier.tar.gz", "--dest", "/models/model",
        "--retries", "5", "--sha256-file", "/config/sha256.json",
    ]  # fmt: skip
    assert {"name": "model", "emptyDir": {}} in pod["volumes"]
    assert _mount(pod, "/models/model")["readOnly"] is True
    assert fetch["securityContext"]["readOnlyRootFilesystem"] is True


def test_s3_credentials_come_from_the_secret_never_the_spec() -> None:
    pod = _pod(rendered(model(model={"source": S3})))
    (fetch,) = pod["initContainers"]
    assert "--s3-endpoint" in fetch["args"] and "http://minio.store:9000" in fetch["args"]
    keys = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in fetch["env"]}
    assert keys["AWS_ACCESS_KEY_ID"] == {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}
    assert keys["AWS_SESSION_TOKEN"]["optional"] is True


def test_a_shared_cache_keys_the_download_by_source_and_keeps_compiled_models_too() -> None:
    spec: dict[str, Any] = {
        "model": {"source": S3, "cache": {"claimName": "model-store"}},
        "performance": {"modelCache": {"claimName": "model-store"}},
    }
    pod = _pod(rendered(model(**spec)))
    (fetch,) = pod["initContainers"]
    dest = fetch["args"][fetch["args"].index("--dest") + 1]
    assert dest.startswith("/store/models/") and len(dest.rsplit("/", 1)[1]) == 16
    assert fetch["args"][-2:] == ["--make-dir", "/store/compiled"]
    served = _mount(pod, "/models/model")
    assert served == {
        "name": "model-store", "mountPath": "/models/model",
        "subPath": dest.removeprefix("/store/"), "readOnly": True,
    }  # fmt: skip
    assert _mount(pod, "/cache") == {"name": "model-store", "mountPath": "/cache",
                                     "subPath": "compiled"}  # fmt: skip
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "model-store",
                       "persistentVolumeClaim": {"claimName": "model-store"}}]  # fmt: skip
    other = _pod(rendered(model(model={"source": HTTP, "cache": {"claimName": "model-store"}})))
    other_dest = other["initContainers"][0]["args"][3]
    assert other_dest != dest  # another source, another directory


def test_a_download_cache_needs_a_fetched_source() -> None:
    with pytest.raises(ValidationError, match=r"model\.cache keeps downloads"):
        model(model={"source": {"pvc": {"claimName": "m"}}, "cache": {"claimName": "c"}})


def test_an_image_source_is_an_image_volume_or_copied_out_by_its_own_image() -> None:
    source = {"image": {"reference": "registry.local/models/classifier:1", "path": "/models"}}
    with_volumes = _pod(rendered(model(model={"source": source}),
                                 settings(renderGroupId=110, imageVolumes=True)))  # fmt: skip
    assert "initContainers" not in with_volumes
    assert with_volumes["volumes"][1]["image"]["reference"] == "registry.local/models/classifier:1"
    assert _mount(with_volumes, "/models/model")["subPath"] == "models"
    copied = _pod(rendered(model(model={"source": source})))
    (copy,) = copied["initContainers"]
    assert copy["image"] == "registry.local/models/classifier:1"
    assert copy["command"] == ["cp", "-R", "/models/.", "/kubevino-model"]
    assert {"name": "model", "emptyDir": {}} in copied["volumes"]


def _init_pod(state: dict[str, Any], finished: str = "2026-11-23T00:00:00Z") -> dict[str, Any]:
    terminated = {**state, "finishedAt": finished}
    return {
        "metadata": {"name": "m-1"},
        "spec": {"nodeName": "n1"},
        "status": {
            "initContainerStatuses": [
                {"name": "fetch-model", "state": {"terminated": terminated}, "restartCount": 0}
            ]
        },
    }


def test_model_loaded_says_source_versions_and_time_or_why_not() -> None:
    result = rendered(model(model={"source": S3}))
    done = _init_pod({"exitCode": 0, "message": "ModelFetch=Fetched: s3://models/vision/"
                      "classifier: versions 1 (2 files, 0.6 MB) in 1.2 s"})  # fmt: skip
    report = fetch_report([done])
    state = model_loaded(result, None, report, serving=True)
    assert (state.status, state.reason) == ("True", "Fetched")
    assert state.message == "s3://models/vision/classifier: versions 1 (2 files, 0.6 MB) in 1.2 s"
    denied = _init_pod({"exitCode": 1, "message": "ModelFetch=Unauthorized: s3://models/vision/"
                        "classifier: SignatureDoesNotMatch: The request signature we calculated "
                        "does not match (check the keys in the Secret)"})  # fmt: skip
    problem = diagnose([denied])
    assert problem is not None and problem.condition == "ModelLoaded"
    state = model_loaded(result, problem, None, serving=False)
    assert (state.status, state.reason) == ("False", "Unauthorized")
    assert (
        "SignatureDoesNotMatch" in state.message and "Fix: check the credentials" in state.message
    )


def test_mounted_sources_are_loaded_once_a_pod_serves() -> None:
    result = rendered(model(model={"source": {"pvc": {"claimName": "models", "subPath": "cls"}}}))
    assert model_loaded(result, None, None, serving=False).reason == "Pending"
    state = model_loaded(result, None, None, serving=True)
    assert (state.status, state.reason) == ("True", "Loaded")
    assert state.message == "the serving pods load the model mounted from PVC models (subPath cls)"
