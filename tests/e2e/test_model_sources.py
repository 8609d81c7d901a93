"""Every model source, on the real node, answering a real client; every named failure a
``ModelLoaded`` condition with its reason.

The stores run inside the test's network namespace on the node's address (a plain
``http.server`` and MinIO's real server), so pods reach them the way they reach any service
outside the cluster, and no traffic leaves the namespace.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubevino_devcluster.images import podman
from kubevino_devcluster.ports import free_ports
from tests.cluster.conftest import condition, get, wait_until
from tests.e2e.conftest import MODELS, Cluster
from tests.e2e.helpers import (
    apply_model,
    host_path_claim,
    node_model_directory,
    port_forward,
    run_clients,
)
from tests.harness.stores import FileServer, Minio, file_server, minio_server, model_archive

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Stores:
    http: FileServer
    s3: Minio
    model: Path  # the bundled model in Model Server's layout, on the node
    digest: str  # sha256 of 1/model.bin


@pytest.fixture(scope="module")
def stores(operator_installed: Cluster) -> Iterator[Stores]:
    e2e = operator_installed
    base = e2e.directory / "sources"
    model = node_model_directory(base / "models")
    web = base / "web"
    web.mkdir()
    model_archive(model, web / "classifier.tar.gz")
    http_port, s3_port = free_ports(2)
    host = e2e.namespace.node_ip
    with (
        file_server(web, host, http_port, base) as http,
        minio_server(base / "minio", host, s3_port, base) as s3,
    ):
        s3.upload_tree("models", "vision/classifier", model)
        digest = hashlib.sha256((model / "1" / "model.bin").read_bytes()).hexdigest()
        yield Stores(http, s3, model, digest)


def _apply(e2e: Cluster, name: str, model: dict[str, Any], **spec: Any) -> None:
    body: dict[str, Any] = {"model": {"name": "classifier", **model}}
    body.update(spec)
    apply_model(e2e.plane, name, MODELS, body)


def _loaded(e2e: Cluster, name: str, status: str, reason: str, timeout: float = 180) -> str:
    def reached() -> dict[str, Any] | None:
        found = condition(get(e2e.plane, "inferencemodel", name, MODELS), "ModelLoaded")
        return found if (found.get("status"), found.get("reason")) == (status, reason) else None

    try:
        found = wait_until(reached, timeout, f"{name}: ModelLoaded {status}/{reason}")
    except AssertionError:
        print(e2e.plane.kubectl("describe", "inferencemodel", name, "-n", MODELS).stdout)
        print(e2e.plane.kubectl("get", "pods", "-n", MODELS, "-o", "wide").stdout)
        raise
    message: str = found["message"]
    return message


def _serves(e2e: Cluster, name: str) -> None:
    """Ready, and a real client gets answers through the Service."""
    waited = e2e.plane.kubectl(
        "wait", "--for=condition=Ready", f"inferencemodel/{name}", "-n", MODELS,
        "--timeout=240s", check=False, timeout=270,
    )  # fmt: skip
    assert waited.returncode == 0, e2e.plane.kubectl("describe", "inferencemodel", name,
                                                    "-n", MODELS).stdout  # fmt: skip
    with port_forward(e2e.plane, MODELS, f"service/{name}", 8000, 9000) as (rest, grpc):
        answers = run_clients(f"127.0.0.1:{rest}", f"127.0.0.1:{grpc}", "classifier")
    assert len(answers["kserve_rest"][0]) == len(answers["kserve_grpc"][0]) > 0


def _delete(e2e: Cluster, *names: str) -> None:
    for name in names:
        e2e.plane.kubectl("delete", "inferencemodel", name, "-n", MODELS, "--wait=true",
                          check=False)  # fmt: skip


def test_http_archive_is_fetched_verified_and_served(
    operator_installed: Cluster, stores: Stores
) -> None:
    e2e = operator_installed
    url = f"{stores.http.url}/classifier.tar.gz"
    source = {"http": {"url": url, "sha256": {"1/model.bin": stores.digest}}}
    _apply(e2e, "from-http", {"source": source})
    message = _loaded(e2e, "from-http", "True", "Fetched")
    assert message.startswith(f"{url}: versions 1 (2 files, ") and " in " in message
    _serves(e2e, "from-http")

    wrong = {"http": {"url": url, "sha256": {"1/model.bin": "0" * 64}}}
    _apply(e2e, "bad-checksum", {"source": wrong})
    message = _loaded(e2e, "bad-checksum", "False", "ChecksumMismatch", timeout=120)
    assert f"1/model.bin: sha256 {stores.digest}, the spec expects {'0' * 64}" in message
    ready = condition(get(e2e.plane, "inferencemodel", "bad-checksum", MODELS), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ChecksumMismatch")

    _apply(e2e, "no-file", {"source": {"http": {"url": f"{stores.http.url}/missing.tar.gz"}}})
    message = _loaded(e2e, "no-file", "False", "NotFound", timeout=120)
    assert f"GET {stores.http.url}/missing.tar.gz answered 404" in message
    _delete(e2e, "from-http", "bad-checksum", "no-file")


def _secret(e2e: Cluster, name: str, key_id: str, secret: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": MODELS},
        "data": {
            "AWS_ACCESS_KEY_ID": base64.b64encode(key_id.encode()).decode(),
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(secret.encode()).decode(),
        },
    }
    e2e.plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def test_s3_on_minio_with_keys_from_a_secret(operator_installed: Cluster, stores: Stores) -> None:
    e2e = operator_installed
    _secret(e2e, "s3-keys", stores.s3.user, stores.s3.password)
    _secret(e2e, "s3-wrong-keys", stores.s3.user, "not-the-secret")
    s3 = {"uri": "s3://models/vision/classifier", "endpoint": stores.s3.endpoint}
    _apply(e2e, "from-s3", {"source": {"s3": {**s3, "secretRef": {"name": "s3-keys"}}}})
    message = _loaded(e2e, "from-s3", "True", "Fetched")
    assert message.startswith("s3://models/vision/classifier: versions 1 (2 files, ")
    _serves(e2e, "from-s3")

    _apply(e2e, "s3-denied", {"source": {"s3": {**s3, "secretRef": {"name": "s3-wrong-keys"}}}})
    message = _loaded(e2e, "s3-denied", "False", "Unauthorized", timeout=120)
    assert "SignatureDoesNotMatch" in message and "Fix: check the credentials" in message
    _delete(e2e, "from-s3", "s3-denied")


def test_a_users_pvc_is_served_read_only_and_left_intact(
    operator_installed: Cluster, stores: Stores
) -> None:
    e2e = operator_installed
    volume_root = stores.model.parent
    host_path_claim(e2e.plane, MODELS, "user-models", volume_root, "ReadOnlyMany")
    _apply(e2e, "from-pvc", {"source": {"pvc": {"claimName": "user-models",
                                                "subPath": stores.model.name}}})  # fmt: skip
    message = _loaded(e2e, "from-pvc", "True", "Loaded")
    subpath = stores.model.name
    assert message == (
        f"the serving pods load the model mounted from PVC user-models (subPath {subpath})"
    )
    _serves(e2e, "from-pvc")
    _delete(e2e, "from-pvc")
    claim = get(e2e.plane, "pvc", "user-models", MODELS)
    assert claim is not None and claim["status"]["phase"] == "Bound"
    assert (stores.model / "1" / "model.bin").is_file()


def test_two_replicas_share_one_download_and_the_compiled_cache(
    operator_installed: Cluster, stores: Stores
) -> None:
    e2e = operator_installed
    store = e2e.directory / "sources" / "store"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    host_path_claim(e2e.plane, MODELS, "model-store", store, "ReadWriteMany")
    before = stores.http.requests().count("GET /classifier.tar.gz")
    _apply(
        e2e,
        "cached",
        {"source": {"http": {"url": f"{stores.http.url}/classifier.tar.gz"}},
         "cache": {"claimName": "model-store"}},
        performance={"modelCache": {"claimName": "model-store"}},
        serving={"replicas": 2},
    )  # fmt: skip
    _serves(e2e, "cached")
    pods = json.loads(
        e2e.plane.kubectl("get", "pods", "-n", MODELS, "-l", "kubevino.io/inference-model=cached",
                          "-o", "json").stdout
    )["items"]  # fmt: skip
    said = sorted(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["message"].split(":")[0]
        for pod in pods
    )
    assert said == ["ModelFetch=Cached", "ModelFetch=Fetched"], said
    assert stores.http.requests().count("GET /classifier.tar.gz") == before + 1
    assert any((store / "compiled").iterdir()), "the compiled-model cache is on the PVC"
    _delete(e2e, "cached")


def test_a_full_cache_volume_is_no_space(operator_installed: Cluster, stores: Stores) -> None:
    """A 256 KiB tmpfs as the cache PVC: the 0.6 MB model cannot fit."""
    e2e = operator_installed
    tiny = e2e.directory / "sources" / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(tiny)],
                   check=True)  # fmt: skip
    try:
        host_path_claim(e2e.plane, MODELS, "tiny-store", tiny, "ReadWriteMany")
        source = {"http": {"url": f"{stores.http.url}/classifier.tar.gz"}}
        _apply(e2e, "no-space", {"source": source, "cache": {"claimName": "tiny-store"}})
        message = _loaded(e2e, "no-space", "False", "NoSpace", timeout=120)
        assert "no space left on the volume" in message and "MB free" in message
        _delete(e2e, "no-space")
        e2e.plane.kubectl("delete", "pvc", "tiny-store", "-n", MODELS, "--wait=true")
        e2e.plane.kubectl("delete", "pv", f"{MODELS}-tiny-store", "--wait=true")

        def unmounted() -> bool:
            done = subprocess.run(["umount", str(tiny)], capture_output=True)
            return done.returncode == 0

        wait_until(unmounted, 60, "the tmpfs unmounted (no pod holds it)")
    finally:
        subprocess.run(["umount", "-l", str(tiny)], capture_output=True)


def _model_image(model: Path) -> tuple[str, Path]:
    """An OCI image whose filesystem carries the model (a "modelcar"), built with podman."""
    tag = "localhost/kubevino-test/classifier-model:1"
    context = Path(tempfile.mkdtemp(prefix="modelcar-"))
    try:
        shutil.copytree(model, context / "classifier")
        (context / "Containerfile").write_text(
            "FROM docker.io/library/debian:bookworm-slim\nCOPY classifier/ /models/\n"
        )
        podman("build", "--format", "docker", "-t", tag, str(context))
        archive = context.parent / f"{context.name}.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), tag)
        podman("rmi", tag, check=False)  # the node has it now; keep podman's store as it was
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return tag, archive


def test_an_oci_image_carries_the_model(operator_installed: Cluster, stores: Stores) -> None:
    """Image volumes need containerd 2.1+; this node's containerd 1.6 gets the copy route."""
    e2e = operator_installed
    tag, archive = _model_image(stores.model)
    try:
        e2e.node.import_image(archive)
    finally:
        archive.unlink(missing_ok=True)
    _apply(e2e, "from-image", {"source": {"image": {"reference": tag, "path": "/models"}}})
    message = _loaded(e2e, "from-image", "True", "Loaded")
    assert f"image {tag}" in message
    _serves(e2e, "from-image")
    _delete(e2e, "from-image")
