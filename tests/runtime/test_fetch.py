"""``kubevino-fetch`` against real servers on loopback: python's http.server and MinIO.

What the init container promises: Model Server's layout, checksums checked, transient failures
retried, a failed or partial download never visible as a version, one download for replicas
sharing a cache, and a termination message that says which of those happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubevino_devcluster.ports import free_ports
from tests.harness.stores import FileServer, Minio, file_server, minio_server, model_archive


@dataclass(frozen=True)
class Outcome:
    code: int
    message: str
    log: str


def run_fetch(tmp_path: Path, *args: str, name: str = "fetch") -> Outcome:
    termination = tmp_path / f"{name}-termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "kubevino_runtime.fetch", *args],
        env={**os.environ, "KUBEVINO_TERMINATION_LOG": str(termination)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    message = termination.read_text().strip() if termination.exists() else ""
    return Outcome(done.returncode, message, done.stdout + done.stderr)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def http_store(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("http-root")
    model_archive(model_dir, root / "classifier.tar.gz")
    (root / "broken.tar.gz").write_bytes(b"this is not gzip")
    (port,) = free_ports(1)
    with file_server(root, "127.0.0.1", port, tmp_path_factory.mktemp("http-log")) as server:
        yield server


def test_an_archive_over_http_lands_in_model_server_layout(
    http_store: FileServer, model_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    expected = {"1/model.bin": _digest(model_dir / "1" / "model.bin")}
    (tmp_path / "sha.json").write_text(json.dumps(expected))
    outcome = run_fetch(
        tmp_path, "--url", f"{http_store.url}/classifier.tar.gz", "--dest", str(dest),
        "--sha256-file", str(tmp_path / "sha.json"),
    )  # fmt: skip
    assert outcome.code == 0, outcome.log
    assert outcome.message.startswith(
        f"ModelFetch=Fetched: {http_store.url}/classifier.tar.gz: versions 1 (2 files"
    ), outcome.message
    assert _versions(dest) == ["1"]
    assert _digest(dest / "1" / "model.xml") == _digest(model_dir / "1" / "model.xml")
    record = json.loads((dest / ".kubevino-fetch.json").read_text())
    assert record["versions"] == ["1"] and record["files"] == 2


def test_a_wrong_checksum_fails_and_serves_nothing(http_store: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "models"
    (tmp_path / "sha.json").write_text(json.dumps({"1/model.bin": "0" * 64}))
    outcome = run_fetch(
        tmp_path, "--url", f"{http_store.url}/classifier.tar.gz", "--dest", str(dest),
        "--sha256-file", str(tmp_path / "sha.json"),
    )  # fmt: skip
    assert outcome.code == 1
    assert outcome.message.startswith("ModelFetch=ChecksumMismatch: 1/model.bin: sha256 ")
    assert f"the spec expects {'0' * 64}" in outcome.message
    assert _versions(dest) == []  # the verified-or-nothing rule


def test_missing_files_and_broken_archives_say_so(http_store: FileServer, tmp_path: Path) -> None:
    missing = run_fetch(
        tmp_path, "--url", f"{http_store.url}/nope.tar.gz", "--dest", str(tmp_path / "a"),
        name="missing",
    )  # fmt: skip
    assert missing.code == 1
    assert (
        missing.message
        == f"ModelFetch=NotFound: GET {http_store.url}/nope.tar.gz answered 404: no such file"
    )
    broken = run_fetch(
        tmp_path, "--url", f"{http_store.url}/broken.tar.gz", "--dest", str(tmp_path / "b"),
        name="broken",
    )  # fmt: skip
    assert broken.code == 1 and broken.message.startswith("ModelFetch=InvalidModel: ")
    assert _versions(tmp_path / "b") == []


def test_a_full_volume_is_no_space_and_leaves_nothing(
    http_store: FileServer, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the runtime tier as root")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], check=True)
    try:
        outcome = run_fetch(
            tmp_path, "--url", f"{http_store.url}/classifier.tar.gz", "--dest", str(tiny / "m")
        )
        assert outcome.code == 1
        assert outcome.message.startswith("ModelFetch=NoSpace: no space left on the volume")
        assert _versions(tiny / "m") == []
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


def test_an_unreachable_server_is_retried_with_backoff_then_reported(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # nothing listens there
    outcome = run_fetch(
        tmp_path, "--url", f"http://127.0.0.1:{port}/m.tar.gz", "--dest", str(tmp_path / "m"),
        "--retries", "3",
    )  # fmt: skip
    assert outcome.code == 1
    assert outcome.message.startswith(f"ModelFetch=Unreachable: GET http://127.0.0.1:{port}/")
    assert outcome.log.count("retrying in") == 2
    assert "retrying in 1 s" in outcome.log and "retrying in 2 s" in outcome.log


def test_replicas_sharing_a_cache_download_once(http_store: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "models" / "abc"
    url = f"{http_store.url}/classifier.tar.gz"
    before = http_store.requests().count("GET /classifier.tar.gz")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "kubevino_runtime.fetch", "--url", url, "--dest", str(dest)],
            env={**os.environ, "KUBEVINO_TERMINATION_LOG": str(tmp_path / f"t{index}")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(2)
    ]
    assert [process.wait(120) for process in processes] == [0, 0]
    messages = sorted((tmp_path / f"t{index}").read_text() for index in range(2))
    assert messages[0].startswith("ModelFetch=Cached: ") and "nothing downloaded" in messages[0]
    assert messages[1].startswith("ModelFetch=Fetched: ")
    assert http_store.requests().count("GET /classifier.tar.gz") == before + 1
    assert _versions(dest) == ["1"]


def test_a_changed_source_replaces_what_an_earlier_fetch_left(
    http_store: FileServer, tmp_path: Path
) -> None:
    dest = tmp_path / "models"
    (dest / "7").mkdir(parents=True)
    (dest / "7" / "model.xml").write_text("left over from an interrupted fetch")
    outcome = run_fetch(tmp_path, "--url", f"{http_store.url}/classifier.tar.gz", "--dest",
                        str(dest))  # fmt: skip
    assert outcome.code == 0, outcome.log
    assert _versions(dest) == ["1"]


@pytest.fixture(scope="module")
def s3_store(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Minio]:
    (port,) = free_ports(1)
    with minio_server(
        tmp_path_factory.mktemp("minio-data"), "127.0.0.1", port,
        tmp_path_factory.mktemp("minio-log"),
    ) as minio:  # fmt: skip
        minio.upload_tree("models", "vision/classifier", model_dir)
        yield minio


def _s3_env(minio: Minio, secret: str | None = None) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": minio.user, "AWS_SECRET_ACCESS_KEY": secret or minio.password}


def run_s3_fetch(tmp_path: Path, minio: Minio, uri: str, secret: str | None = None) -> Outcome:
    termination = tmp_path / "termination-log"
    done = subprocess.run(
        [sys.executable, "-m", "kubevino_runtime.fetch", "--s3-uri", uri, "--s3-endpoint",
         minio.endpoint, "--dest", str(tmp_path / "models"), "--retries", "2"],
        env={**os.environ, **_s3_env(minio, secret),
             "KUBEVINO_TERMINATION_LOG": str(termination)},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return Outcome(done.returncode, termination.read_text().strip(), done.stdout + done.stderr)


def test_an_s3_prefix_on_minio_is_fetched(s3_store: Minio, model_dir: Path, tmp_path: Path) -> None:
    outcome = run_s3_fetch(tmp_path, s3_store, "s3://models/vision/classifier")
    assert outcome.code == 0, outcome.log
    assert outcome.message.startswith("ModelFetch=Fetched: s3://models/vision/classifier: ")
    fetched = tmp_path / "models" / "1" / "model.bin"
    assert _digest(fetched) == _digest(model_dir / "1" / "model.bin")


def test_wrong_s3_keys_are_unauthorized(s3_store: Minio, tmp_path: Path) -> None:
    outcome = run_s3_fetch(tmp_path, s3_store, "s3://models/vision/classifier", "wrong-secret")
    assert outcome.code == 1
    assert outcome.message.startswith("ModelFetch=Unauthorized: s3://models/vision/classifier: ")
    assert "SignatureDoesNotMatch" in outcome.message and "check the keys" in outcome.message


def test_an_empty_prefix_or_missing_bucket_is_not_found(s3_store: Minio, tmp_path: Path) -> None:
    empty = run_s3_fetch(tmp_path, s3_store, "s3://models/vision/nothing-here")
    assert empty.message == (
        "ModelFetch=NotFound: s3://models/vision/nothing-here: no objects under this prefix"
    )
    bucket = run_s3_fetch(tmp_path, s3_store, "s3://no-such-bucket/m")
    assert bucket.code == 1 and bucket.message.startswith("ModelFetch=NotFound: ")
    assert "NoSuchBucket" in bucket.message
