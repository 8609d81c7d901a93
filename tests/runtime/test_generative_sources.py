"""Generative models as each source delivers them, served: kubevino-fetch lays an HTTP(S) bare
.gguf file, an archive of a GenAI directory and an S3 prefix out as version 1 and refuses what
the task cannot serve (InvalidModel); kubevino-serve reads version 1 (or a mounted PVC, hostPath
or image directory: the same one directory) with the command line the operator renders, and
publishes the pipeline, its device and the context length (/v3/models, /kubevino/diagnostics)."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kubevino_devcluster.ports import free_ports
from kubevino_runtime.demo_generative import (
    LLAMA_FILE,
    MAX_TOKENS,
    write_embedding_model,
    write_llama_gguf,
)
from tests.harness.stores import FileServer, Minio, file_server, minio_server
from tests.runtime.serving import RunningServer, running_server
from tests.runtime.test_fetch import Outcome, run_fetch

pytestmark = pytest.mark.runtime

CONTEXT = 2048  # write_llama_gguf's context length
SERVE = ["--model_name", "llm", "--target_device", "CPU"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generative-models")
    write_llama_gguf(root / "llama")
    write_embedding_model(root / "bge")
    return root


@pytest.fixture(scope="module")
def http_store(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("generative-http")
    shutil.copy(models / "llama" / LLAMA_FILE, root / LLAMA_FILE)
    with tarfile.open(root / "bge.tar.gz", "w:gz") as tarred:
        tarred.add(models / "bge", arcname="bge")  # one wrapping folder, as people pack it
    hub = root / "hub"
    hub.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (hub / name).write_text("{}")
    with tarfile.open(root / "hub.tar.gz", "w:gz") as tarred:
        tarred.add(hub, arcname="hub")
    (port,) = free_ports(1)
    with file_server(root, "127.0.0.1", port, tmp_path_factory.mktemp("http-log")) as server:
        yield server


def fetch(tmp_path: Path, *args: str, name: str = "fetch") -> tuple[Outcome, Path]:
    dest = tmp_path / f"{name}-models"
    return run_fetch(tmp_path, *args, "--dest", str(dest), name=name), dest


@contextmanager
def serve(model_path: Path, task: str, tmp_path: Path, *flags: str) -> Iterator[RunningServer]:
    args = ["--model_path", str(model_path), "--task", task, *SERVE, *flags]
    with running_server(args, tmp_path) as server:
        server.wait_ready(120)
        yield server


def diagnostics(server: RunningServer) -> dict[str, object]:
    section: dict[str, object] = httpx.get(f"{server.rest}/kubevino/diagnostics").json()[
        "generative"
    ]
    return section


@pytest.fixture(scope="module")
def gguf_from_url(
    http_store: FileServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A bare .gguf URL, fetched and served as the operator renders it for either runtime
    (--model_path <version 1> --gguf_filename <the URL's file name>)."""
    tmp_path = tmp_path_factory.mktemp("gguf-url")
    outcome, dest = fetch(
        tmp_path, "--url", f"{http_store.url}/{LLAMA_FILE}?download=true",
        "--task", "text_generation", "--gguf-filename", LLAMA_FILE,
    )  # fmt: skip
    assert outcome.code == 0, outcome.log
    assert outcome.message.startswith("ModelFetch=Fetched: "), outcome.message
    assert sorted(p.name for p in (dest / "1").iterdir()) == [LLAMA_FILE]
    with serve(dest / "1", "text_generation", tmp_path, "--gguf_filename", LLAMA_FILE) as server:
        yield server


def test_a_bare_gguf_url_is_fetched_as_version_1_and_serves(gguf_from_url: RunningServer) -> None:
    answer = httpx.post(
        f"{gguf_from_url.rest}/v3/completions",
        json={"model": "llm", "prompt": "the cat", "max_tokens": 4, "ignore_eos": True},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 4


def test_models_and_diagnostics_publish_the_pipeline_and_the_context_length(
    gguf_from_url: RunningServer,
) -> None:
    (listed,) = httpx.get(f"{gguf_from_url.rest}/v3/models").json()["data"]
    assert listed["id"] == "llm" and listed["max_model_len"] == CONTEXT
    assert httpx.get(f"{gguf_from_url.rest}/v3/models/llm").json()["max_model_len"] == CONTEXT
    assert diagnostics(gguf_from_url) == {
        "name": "llm",
        "task": "text_generation",
        "format": "GGUF",
        "device": "CPU",
        "state": "Loaded",
        "pipeline": "ContinuousBatchingPipeline",
        "contextLength": CONTEXT,
    }


def test_an_archive_of_a_genai_directory_serves_embeddings(
    http_store: FileServer, tmp_path: Path
) -> None:
    outcome, dest = fetch(
        tmp_path, "--url", f"{http_store.url}/bge.tar.gz", "--task", "embeddings"
    )  # fmt: skip
    assert outcome.code == 0, outcome.log
    assert (dest / "1" / "openvino_model.xml").is_file()  # the wrapping folder is unwrapped
    with serve(dest / "1", "embeddings", tmp_path) as server:
        answer = httpx.post(
            f"{server.rest}/v3/embeddings", json={"model": "llm", "input": ["the cat"]}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["data"][0]["embedding"]) == 32
        report = diagnostics(server)
        assert (report["pipeline"], report["format"]) == ("TextEmbeddingPipeline", "OpenVINO IR")
        assert report["contextLength"] == MAX_TOKENS  # config.json's max_position_embeddings


@pytest.fixture(scope="module")
def s3_store(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Minio]:
    (port,) = free_ports(1)
    with minio_server(
        tmp_path_factory.mktemp("minio-data"), "127.0.0.1", port,
        tmp_path_factory.mktemp("minio-log"),
    ) as minio:  # fmt: skip
        minio.upload_tree("models", "llm/tiny", models / "llama")
        yield minio


def test_an_s3_prefix_with_a_gguf_serves_from_version_1_without_naming_it(
    s3_store: Minio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 holding one .gguf is also what a PVC, hostPath or image source mounts: the
    Kubevino runtime serves the directory's one .gguf without --gguf_filename."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_store.user)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_store.password)
    outcome, dest = fetch(
        tmp_path, "--s3-uri", "s3://models/llm/tiny", "--s3-endpoint", s3_store.endpoint,
        "--task", "text_generation",
    )  # fmt: skip
    assert outcome.code == 0, outcome.log
    with serve(dest / "1", "text_generation", tmp_path) as server:
        assert httpx.get(f"{server.rest}/v3/models").json()["data"][0]["max_model_len"] == CONTEXT


def test_what_the_task_cannot_serve_is_invalid_model_and_nothing_is_kept(
    http_store: FileServer, tmp_path: Path
) -> None:
    hub, hub_dest = fetch(
        tmp_path, "--url", f"{http_store.url}/hub.tar.gz", "--task", "text_generation",
        name="hub",
    )  # fmt: skip
    assert hub.code == 1
    assert hub.message == (
        f"ModelFetch=InvalidModel: {http_store.url}/hub.tar.gz (version 1) holds no OpenVINO "
        "GenAI model (no openvino_model.xml, openvino_tokenizer.xml, openvino_detokenizer.xml) "
        "and no .gguf file; it holds config.json, model.safetensors, tokenizer.json. Export the "
        "model with `optimum-cli export openvino` (which writes the tokenizer and detokenizer "
        "IRs too), or serve a .gguf file"
    )
    assert [p.name for p in hub_dest.iterdir() if not p.name.startswith(".")] == []
    wrong_task, _ = fetch(
        tmp_path, "--url", f"{http_store.url}/{LLAMA_FILE}", "--task", "rerank", name="rerank"
    )  # fmt: skip
    assert wrong_task.code == 1
    assert "GGUF files serve --task text_generation only" in wrong_task.message
    # The ModelServer runtime's fetch: Model Server reads a .gguf only when it is named.
    unnamed, _ = fetch(
        tmp_path, "--url", f"{http_store.url}/{LLAMA_FILE}", "--task", "text_generation",
        "--gguf-named-only", name="unnamed",
    )  # fmt: skip
    assert unnamed.code == 1
    assert unnamed.message.endswith(f"set spec.model.ggufFile: {LLAMA_FILE}"), unnamed.message


def test_a_directory_of_several_gguf_files_fails_start_naming_them(
    models: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "quantizations"
    directory.mkdir()
    for name in ("tiny-q4.gguf", "tiny-q8.gguf"):
        shutil.copy(models / "llama" / LLAMA_FILE, directory / name)
    args = ["--model_path", str(directory), "--task", "text_generation", *SERVE]
    with running_server(args, tmp_path, wait_live=False) as server:
        assert server.process.wait(60) == 1, server.log()
        message = server.termination_log.read_text().strip()
    assert message == (
        f"kubevino-serve cannot start: model llm: --model_path {directory} holds 2 .gguf files "
        "(tiny-q4.gguf, tiny-q8.gguf): name the one to serve (--gguf_filename; "
        "spec.model.ggufFile in an InferenceModel)"
    )
