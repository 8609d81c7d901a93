"""Generative InferenceModels on the real node: the chart's operator turns a TextGeneration
and an Embeddings model into serving pods; once Ready, the official openai client reaches
them through ``kubectl port-forward`` to the Service's OpenAI port and gets what
openvino-genai computes in this process on the same files.

The LLM is a tiny Llama GGUF alone in a hostPath directory (the pod's read-only model mount,
which GenAI's GGUF reader cannot open in place: the server loads it from a copy in /tmp)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import openai
import openvino_genai as genai
import pytest

from kubevino_runtime.demo_generative import (
    LLAMA_FILE,
    write_embedding_model,
    write_llama_gguf,
    write_rerank_model,
)
from tests.cluster.conftest import get, wait_until
from tests.e2e.conftest import MODELS, Cluster
from tests.e2e.helpers import apply_model, port_forward
from tests.harness.genai_reference import greedy_chat, greedy_completion

pytestmark = pytest.mark.e2e

TOKENS = 16
MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of france"},
]
TEXTS = ["the cat sat on the mat", "paris is the capital of france"]
PROMPT = "the capital of france is"
LLAMA_CONTEXT = 2048  # what write_llama_gguf writes into the GGUF's metadata


@pytest.fixture(scope="module")
def node_models(operator_installed: Cluster) -> Iterator[Path]:
    """The three models on the node, readable by the pods' non-root user; the InferenceModels
    are applied at once so that their pods start side by side."""
    e2e = operator_installed
    root = e2e.directory / "generative"
    write_llama_gguf(root / "llm")  # the GGUF alone: the server finds it in the directory
    write_embedding_model(root / "embeddings")
    write_rerank_model(root / "rerank")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    apply_model(e2e.plane, "tiny-chat", MODELS, {
        "model": {"name": "tiny-llama", "task": "TextGeneration",
                  "source": {"hostPath": {"path": str(root / "llm")}}},
        "device": {"targetDevice": "CPU"},
        "generation": {"textGeneration": {"kvCacheSizeGB": 1}},
    })  # fmt: skip
    apply_model(e2e.plane, "tiny-embeddings", MODELS, {
        "model": {"name": "tiny-embeddings", "task": "Embeddings",
                  "source": {"hostPath": {"path": str(root / "embeddings")}}},
        "device": {"targetDevice": "CPU"},
        "generation": {"embeddings": {"pooling": "MEAN", "normalize": False}},
    })  # fmt: skip
    apply_model(e2e.plane, "tiny-rerank", MODELS, {
        "model": {"name": "tiny-rerank", "task": "Rerank",
                  "source": {"hostPath": {"path": str(root / "rerank")}}},
        "device": {"targetDevice": "CPU"},
    })  # fmt: skip
    yield root
    for name in ("tiny-chat", "tiny-embeddings", "tiny-rerank"):
        e2e.plane.kubectl("delete", "inferencemodel", name, "-n", MODELS, "--wait=true",
                          check=False)  # fmt: skip


def _ready_openai_port(e2e: Cluster, name: str, task: str) -> int:
    """Waits for Ready; checks the status names the task and the OpenAI endpoint, whose port
    (the Service's) it returns."""
    waited = e2e.plane.kubectl(
        "wait", "--for=condition=Ready", f"inferencemodel/{name}", "-n", MODELS,
        "--timeout=300s", check=False, timeout=330,
    )  # fmt: skip
    assert waited.returncode == 0, (
        waited.stderr
        + e2e.plane.kubectl("describe", "inferencemodel", name, "-n", MODELS, check=False).stdout
        + e2e.plane.kubectl("get", "pods", "-n", MODELS, "-o", "wide", check=False).stdout
    )
    found = get(e2e.plane, "inferencemodel", name, MODELS)
    assert found is not None
    status = found["status"]
    assert status["task"] == task
    openai_url = urlsplit(str(status["endpoints"]["openai"]))
    assert openai_url.hostname == f"{name}.{MODELS}.svc.cluster.local"
    assert openai_url.path == "/v3"
    assert openai_url.port is not None
    return openai_url.port


def _client(local_port: int) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{local_port}/v3", api_key="unused", max_retries=0
    )


def test_a_text_generation_model_chats_like_in_process_genai_streamed_or_not(
    operator_installed: Cluster, node_models: Path
) -> None:
    e2e = operator_installed
    port = _ready_openai_port(e2e, "tiny-chat", "TextGeneration")
    expected = greedy_chat(node_models / "llm" / LLAMA_FILE, MESSAGES, TOKENS)
    settings: dict[str, Any] = {
        "model": "tiny-llama",
        "messages": MESSAGES,
        "max_tokens": TOKENS,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    # Ready was just observed: the model must answer now, not eventually.
    with port_forward(e2e.plane, MODELS, "service/tiny-chat", port) as (local,):
        client = _client(local)
        assert [model.id for model in client.models.list().data] == ["tiny-llama"]
        whole = client.chat.completions.create(**settings)
        chunks = list(
            client.chat.completions.create(
                **settings, stream=True, stream_options={"include_usage": True}
            )
        )
        completion = client.completions.create(
            model="tiny-llama", prompt=PROMPT, max_tokens=TOKENS, temperature=0,
            extra_body={"ignore_eos": True},
        )  # fmt: skip
    llama = node_models / "llm" / LLAMA_FILE
    assert completion.choices[0].text == greedy_completion(llama, PROMPT, TOKENS)
    assert whole.choices[0].message.content == expected
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == TOKENS
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS

    def pipeline_reported_by_the_pod() -> dict[str, Any] | None:
        found = get(e2e.plane, "inferencemodel", "tiny-chat", MODELS)
        pipeline = ((found or {}).get("status") or {}).get("pipeline") or {}
        return pipeline if pipeline.get("reportedBy") == "Pod" else None

    pipeline = wait_until(pipeline_reported_by_the_pod, 60, "status.pipeline from the pod")
    assert pipeline["name"] == "ContinuousBatchingPipeline"
    assert pipeline["device"] == "CPU"
    assert pipeline["contextLength"] == LLAMA_CONTEXT


def test_an_embeddings_model_embeds_like_in_process_genai_with_its_settings(
    operator_installed: Cluster, node_models: Path
) -> None:
    e2e = operator_installed
    port = _ready_openai_port(e2e, "tiny-embeddings", "Embeddings")
    with port_forward(e2e.plane, MODELS, "service/tiny-embeddings", port) as (local,):
        served = _client(local).embeddings.create(
            model="tiny-embeddings", input=TEXTS, encoding_format="float"
        )
    config = genai.TextEmbeddingPipeline.Config()
    config.pooling_type = genai.TextEmbeddingPipeline.PoolingType.MEAN
    config.normalize = False
    local_pipeline = genai.TextEmbeddingPipeline(str(node_models / "embeddings"), "CPU", config)
    expected = local_pipeline.embed_documents(TEXTS)
    np.testing.assert_allclose([item.embedding for item in served.data], expected, rtol=1e-5)
    assert not np.isclose(np.linalg.norm(expected[0]), 1.0)  # the settings reached the server


def test_a_rerank_model_orders_documents_like_in_process_genai(
    operator_installed: Cluster, node_models: Path
) -> None:
    e2e = operator_installed
    port = _ready_openai_port(e2e, "tiny-rerank", "Rerank")
    query, documents = "the cat", ["the dog sat", "paris is the capital", "cat on the mat"]
    with port_forward(e2e.plane, MODELS, "service/tiny-rerank", port) as (local,):
        # Cohere's shape, as Model Server serves it; the openai client has no rerank call.
        response = httpx.post(
            f"http://127.0.0.1:{local}/v3/rerank",
            json={"model": "tiny-rerank", "query": query, "documents": documents},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    expected = genai.TextRerankPipeline(str(node_models / "rerank"), "CPU").rerank(query, documents)
    results = response.json()["results"]
    assert [r["index"] for r in results] == [index for index, _ in expected]
    np.testing.assert_allclose(
        [r["relevance_score"] for r in results], [score for _, score in expected], rtol=1e-5
    )
