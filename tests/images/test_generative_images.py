"""Both model-server images serve generative models (openvino-genai with its tokenizer ops):
a tiny GGUF LLM and an embedding model made at test time, mounted read-only into a
read-only, unprivileged container, answering the official openai client from outside. The GPU
image runs on the CPU device here (this machine has no GPU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import openvino_genai as genai
import openvino_tokenizers
import pytest

from kubevino_devcluster.images import ISOLATED, ServingContainer, podman, serving_container
from kubevino_runtime.demo_generative import LLAMA_FILE, write_embedding_model, write_llama_gguf
from tests.harness.genai_reference import greedy_chat

pytestmark = pytest.mark.images

SERVER_IMAGES = ("runtime", "runtime-gpu")
MODEL = "tiny"
TOKENS = 16
MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of france"},
]
TEXTS = ["the cat sat on the mat", "paris is the capital of france"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/models in the containers: llm/tiny-llama.gguf and embeddings/ (an IR directory)."""
    root = tmp_path_factory.mktemp("generative-models")
    write_llama_gguf(root / "llm")
    write_embedding_model(root / "embeddings")
    for path in [root, *root.rglob("*")]:  # the image's user (10001) reads them
        path.chmod(0o755 if path.is_dir() else 0o444)
    return root


@pytest.fixture(scope="module", params=SERVER_IMAGES)
def target(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def llm(images: dict[str, str], models: Path, target: str) -> Iterator[ServingContainer]:
    args = ["--task", "text_generation", "--model_path", f"/models/llm/{LLAMA_FILE}",
            "--model_name", MODEL, "--target_device", "CPU", "--cache_size", "1"]  # fmt: skip
    with serving_container(images[target], models, args) as container:
        yield container


@pytest.fixture(scope="module")
def embedder(images: dict[str, str], models: Path, target: str) -> Iterator[ServingContainer]:
    args = ["--task", "embeddings", "--model_path", "/models/embeddings",
            "--model_name", MODEL, "--target_device", "CPU"]  # fmt: skip
    with serving_container(images[target], models, args) as container:
        yield container


def _client(container: ServingContainer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{container.rest}/v3", api_key="unused", max_retries=0)


def test_the_server_images_carry_genai_and_its_tokenizer_ops_at_openvinos_release(
    images: dict[str, str], target: str
) -> None:
    probe = (
        "import json, openvino, openvino_genai, openvino_tokenizers, gguf;"
        "print(json.dumps([openvino.get_version(), openvino_genai.__version__,"
        " openvino_tokenizers.__version__]))"
    )
    out = podman(
        "run", "--rm", *ISOLATED, "--entrypoint", "python3", images[target], "-c", probe
    ).stdout  # fmt: skip
    openvino, genai_version, tokenizers = json.loads(out.strip().splitlines()[-1])
    release = openvino.split("-")[0]  # 2026.4.1
    assert genai_version.startswith(release) and tokenizers.startswith(release)
    assert (genai_version, tokenizers) == (genai.__version__, openvino_tokenizers.__version__)


def test_a_read_only_gguf_answers_a_chat_with_genais_greedy_text(
    llm: ServingContainer, models: Path
) -> None:
    reply = _client(llm).chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=TOKENS,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert reply.choices[0].message.content == greedy_chat(
        models / "llm" / LLAMA_FILE, MESSAGES, TOKENS
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == TOKENS
    # GenAI opens a GGUF read-write: the server loaded it from a copy in the container's /tmp.
    logs = podman("logs", llm.name)
    assert "is read-only, which GenAI cannot open: loading from a copy" in logs.stdout + logs.stderr


def test_a_streamed_chat_says_what_the_whole_answer_says(llm: ServingContainer) -> None:
    client = _client(llm)
    settings: dict[str, Any] = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": TOKENS,
        "temperature": 0,
        "extra_body": {"ignore_eos": True},
    }
    whole = client.chat.completions.create(**settings)
    chunks = list(
        client.chat.completions.create(
            **settings, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS


def test_embeddings_are_genais(embedder: ServingContainer, models: Path) -> None:
    served = _client(embedder).embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    config = genai.TextEmbeddingPipeline.Config()
    config.pooling_type = genai.TextEmbeddingPipeline.PoolingType.CLS  # the server's defaults
    config.normalize = True
    local = genai.TextEmbeddingPipeline(str(models / "embeddings"), "CPU", config)
    expected = local.embed_documents(TEXTS)
    np.testing.assert_allclose([item.embedding for item in served.data], expected, rtol=1e-5)
    assert served.usage.prompt_tokens > 0
