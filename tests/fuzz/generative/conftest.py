"""One server per generative task for the whole session, each watched by a sentinel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubevino_runtime.demo_generative import (
    write_embedding_model,
    write_llama_gguf,
    write_rerank_model,
)
from tests.fuzz.conftest import MAX_REQUEST_BYTES
from tests.fuzz.generative.served import (
    EMBEDDING_NAME,
    LLM_NAME,
    LLM_RSS_HEADROOM_MB,
    RERANK_NAME,
    ServedModel,
    embedding_known_valid,
    generative_server,
    llm_known_valid,
    rerank_known_valid,
)
from tests.fuzz.sentinel import Sentinel

# The sentinels of the servers started so far; each is checked after every test.
_STARTED: list[Sentinel] = []


def _watched(task: str, name: str, sentinel: Sentinel) -> ServedModel:
    _STARTED.append(sentinel)
    return ServedModel(task, name, sentinel.server, sentinel)


@pytest.fixture(scope="session")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    gguf = write_llama_gguf(tmp_path_factory.mktemp("fuzz-llm"))
    # A fixed KV cache (1 GB) rather than one that grows: memory stays bounded, and a request
    # that does not fit waits or is refused instead of growing the server. Prefix caching off,
    # as in tests/runtime: with it, GenAI 2026.4 now and then fails a step ("content_length <=
    # prompt_ids.size() + m_generated_ids.size()") after clients hang up mid-answer (reproduced
    # by the hang-up test with it on: KUBEVINO_FUZZ_SEED=2 KUBEVINO_FUZZ_EXAMPLES=60000), which
    # fails the requests in flight; not yet understood, so not yet worked around.
    with generative_server(
        "text_generation",
        gguf,
        LLM_NAME,
        tmp_path_factory.mktemp("fuzz-llm-server"),
        MAX_REQUEST_BYTES,
        "--cache_size",
        "1",
        "--enable_prefix_caching",
        "false",
    ) as server:
        sentinel = Sentinel(
            server, llm_known_valid(server.rest_port, gguf), rss_headroom_mb=LLM_RSS_HEADROOM_MB
        )
        yield _watched("text_generation", LLM_NAME, sentinel)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    model = write_embedding_model(tmp_path_factory.mktemp("fuzz-embedder") / "model")
    with generative_server(
        "embeddings",
        model,
        EMBEDDING_NAME,
        tmp_path_factory.mktemp("fuzz-embedder-server"),
        MAX_REQUEST_BYTES,
    ) as server:
        sentinel = Sentinel(server, embedding_known_valid(server.rest_port, model))
        yield _watched("embeddings", EMBEDDING_NAME, sentinel)


@pytest.fixture(scope="session")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    model = write_rerank_model(tmp_path_factory.mktemp("fuzz-reranker") / "model")
    with generative_server(
        "rerank",
        model,
        RERANK_NAME,
        tmp_path_factory.mktemp("fuzz-reranker-server"),
        MAX_REQUEST_BYTES,
    ) as server:
        sentinel = Sentinel(server, rerank_known_valid(server.rest_port, model))
        yield _watched("rerank", RERANK_NAME, sentinel)


@pytest.fixture(autouse=True)
def _checked_after_each_test() -> Iterator[None]:
    """Overrides the tier's: these tests use the generative servers, not the tensor one."""
    yield
    for sentinel in _STARTED:
        sentinel.check()
