"""Generative models from every source: where the server reads the GenAI directory or GGUF
file, the flags that name a GGUF for both runtimes, and the fetch's generative check."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubevino_operator.modelsource import generative_model_dir
from kubevino_operator.modelstatus import model_loaded
from kubevino_operator.podhealth import PodProblem
from kubevino_operator.render import Rendered
from kubevino_runtime import startup
from kubevino_runtime.generative.settings import settings_from_args
from tests.unit.builders import model, pod_spec, rendered, server, settings

SOURCES: dict[str, tuple[dict[str, Any], str]] = {
    "pvc": ({"pvc": {"claimName": "models", "subPath": "llm"}}, "/models/model"),
    "hostPath": ({"hostPath": {"path": "/srv/llm"}}, "/models/model"),
    "image": ({"image": {"reference": "registry/llm:1", "path": "/llm"}}, "/models/model"),
    "http": ({"http": {"url": "https://m.example/llm.tar.gz"}}, "/models/model/1"),
    "s3": ({"s3": {"uri": "s3://models/llm"}}, "/models/model/1"),
}
GGUF_URL = "https://huggingface.co/org/Tiny-GGUF/resolve/main/tiny-q4_k_m.gguf?download=true"


def generative(task: str, source: dict[str, Any], **spec: Any) -> Any:
    body = {"name": "chat", "task": task, "source": source}
    body.update(spec.pop("model_fields", {}))
    return model("llm", model=body, **spec)


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def fetch_args(result: Rendered) -> list[str]:
    (fetch,) = pod_spec(result)["initContainers"]
    return list(fetch["args"])


@pytest.mark.parametrize("kind", list(SOURCES))
@pytest.mark.parametrize("runtime", ["Kubevino", "ModelServer"])
def test_every_source_points_the_server_at_the_model_directory(kind: str, runtime: str) -> None:
    source, directory = SOURCES[kind]
    subject = generative("Embeddings", source, serving={"runtime": runtime})
    assert generative_model_dir(subject) == directory
    args = server(rendered(subject, settings(renderGroupId=110)))["args"]
    assert flag(args, "--model_path") == directory
    assert "--gguf_filename" not in args


def test_a_bare_gguf_url_is_fetched_as_version_1_and_named_to_both_runtimes() -> None:
    for runtime in ("Kubevino", "ModelServer"):
        result = rendered(
            generative("TextGeneration", {"http": {"url": GGUF_URL}}, serving={"runtime": runtime})
        )
        args = server(result)["args"]
        assert flag(args, "--model_path") == "/models/model/1"
        # Model Server 2026.2.1 reads --model_path as a GenAI directory unless this names the
        # file (src/graph_export/graph_export.cpp, createServableConfig).
        assert flag(args, "--gguf_filename") == "tiny-q4_k_m.gguf"
        assert fetch_args(result)[-4:] == [
            "--task", "text_generation", "--gguf-filename", "tiny-q4_k_m.gguf",
        ]  # fmt: skip
        parsed = settings_from_args(startup.parse_arguments(args), None)
        assert parsed.gguf_filename == "tiny-q4_k_m.gguf"


def test_gguf_file_names_the_file_on_any_source() -> None:
    pvc = SOURCES["pvc"][0]
    result = rendered(
        generative(
            "TextGeneration",
            pvc,
            model_fields={"ggufFile": "llama-Q8_0.gguf"},
            serving={"runtime": "ModelServer"},
        )
    )
    args = server(result)["args"]
    assert (flag(args, "--model_path"), flag(args, "--gguf_filename")) == (
        "/models/model",
        "llama-Q8_0.gguf",
    )
    # The spec's name wins over the URL's (the URL may name an archive, or be a redirect).
    fetched = rendered(
        generative(
            "TextGeneration",
            {"s3": {"uri": "s3://models/llm"}},
            model_fields={"ggufFile": "b.gguf"},
        )
    )
    assert fetch_args(fetched)[-4:] == ["--task", "text_generation", "--gguf-filename", "b.gguf"]


def test_a_fetched_generative_model_is_checked_for_its_task_and_a_tensor_one_is_not() -> None:
    embeddings = rendered(generative("Embeddings", SOURCES["s3"][0]))
    assert fetch_args(embeddings)[-2:] == ["--task", "embeddings"]
    tensor = rendered(model(model={"source": {"http": {"url": "https://m.example/m.tgz"}}}))
    assert "--task" not in fetch_args(tensor)


def test_model_servers_fetch_refuses_an_unnamed_gguf_the_runtime_would_not_read() -> None:
    def fetched(runtime: str, task: str = "TextGeneration") -> list[str]:
        subject = generative(task, SOURCES["s3"][0], serving={"runtime": runtime})
        return fetch_args(rendered(subject))

    assert fetched("ModelServer")[-3:] == ["--task", "text_generation", "--gguf-named-only"]
    assert "--gguf-named-only" not in fetched("Kubevino")
    assert "--gguf-named-only" not in fetched("ModelServer", "Rerank")


def test_gguf_file_is_for_text_generation_and_is_a_file_name() -> None:
    with pytest.raises(ValidationError, match="serves task TextGeneration only"):
        generative("Embeddings", SOURCES["pvc"][0], model_fields={"ggufFile": "a.gguf"})
    for name in ("dir/a.gguf", "a.bin"):
        with pytest.raises(ValidationError, match="should match pattern"):
            generative("TextGeneration", SOURCES["pvc"][0], model_fields={"ggufFile": name})


def test_model_loaded_says_a_generative_model_is_invalid_with_a_generative_fix() -> None:
    fetched = rendered(generative("TextGeneration", SOURCES["http"][0]))
    fetch_failed = PodProblem(
        "InvalidModel",
        "https://m.example/llm.tar.gz (version 1) holds no OpenVINO GenAI model ...",
        condition="ModelLoaded",
    )
    state = model_loaded(fetched, fetch_failed, None, serving=False)
    assert (state.status, state.reason) == ("False", "InvalidModel")
    assert state.message.endswith(
        "Fix: publish an OpenVINO GenAI model directory (as `optimum-cli export openvino` "
        "writes it) or, for TextGeneration, a .gguf file, or an archive of either."
    )
    mounted = rendered(generative("TextGeneration", SOURCES["pvc"][0]))
    crashing = PodProblem(
        "ServerCrashing",
        "pod llm-1: container server exited with code 1 (3 restarts): kubevino-serve cannot "
        "start: model chat: --model_path /models/model holds 2 .gguf files (a.gguf, b.gguf): "
        "name the one to serve (--gguf_filename; spec.model.ggufFile in an InferenceModel)",
    )
    state = model_loaded(mounted, crashing, None, serving=False)
    assert (state.status, state.reason) == ("False", "InvalidModel")
    assert state.message.startswith("PVC models (subPath llm) is not a model the server can read")
    tensor = rendered(model(model={"source": SOURCES["pvc"][0]}))
    assert model_loaded(tensor, crashing, None, serving=False).reason == "Pending"
