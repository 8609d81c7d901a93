"""The three generative servers of the fuzz tier (one per ``--task``), their tiny models (built
at test time by demo_generative) and the known-valid requests the sentinel sends each between
batches of cases, with the answers in-process GenAI computes for them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import openvino_genai as genai

from tests.fuzz.known_valid import WrongAnswerError
from tests.fuzz.properties import strict_json
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.sentinel import RSS_HEADROOM_MB, Sentinel
from tests.runtime.serving import RunningServer, running_server

LLM_NAME = "tiny-llama"
EMBEDDING_NAME = "tiny-embedder"
RERANK_NAME = "tiny-reranker"
MODEL_NAMES = (LLM_NAME, EMBEDDING_NAME, RERANK_NAME)
# A known-valid answer must come long before this; a hostile one too (properties: no hangs).
ANSWER_TIMEOUT_SECONDS = 30.0
# A cancelled or finished generation leaves the pipeline within a few steps; a leaked one never.
GENERATION_DRAIN_SECONDS = 30.0
# The KV cache (--cache_size 1, conftest) is touched block by block as generations need it and
# kept for reuse: a request of n=128 choices touches far more of it than the known-valid ones
# the baseline comes from. It may grow to its gigabyte; beyond that is a leak.
LLM_RSS_HEADROOM_MB = 1024 + RSS_HEADROOM_MB
KNOWN_PROMPT = "the cat sat on"
KNOWN_TOKENS = 8
KNOWN_TEXTS = ["the cat sat on the mat", "paris is the capital of france"]
KNOWN_QUERY = "the cat"
KNOWN_DOCUMENTS = ["the dog sat", "paris is the capital", "cat on the mat"]


@dataclass(frozen=True)
class ServedModel:
    """One ``kubevino-serve --task`` process and what watches it."""

    task: str
    name: str
    server: RunningServer
    sentinel: Sentinel

    @property
    def port(self) -> int:
        return self.server.rest_port


def post_json(port: int, path: str, document: dict[str, Any]) -> RawAnswer:
    request = RawRequest(
        "POST", path, json.dumps(document).encode(), (("Content-Type", "application/json"),)
    )
    answer = send(port, request, timeout=ANSWER_TIMEOUT_SECONDS)
    if answer is None or answer.status != 200:
        raise WrongAnswerError(f"POST {path} {document}: {answer}")
    return answer


def _get_json(port: int, path: str) -> Any:
    answer = send(port, RawRequest("GET", path), timeout=ANSWER_TIMEOUT_SECONDS)
    if answer is None or answer.status != 200:
        raise WrongAnswerError(f"GET {path}: {answer}")
    return strict_json(answer.body)


def sse_events(body: bytes) -> list[str]:
    """The data of each server-sent event, in order."""
    return [
        line.removeprefix(b"data: ").decode()
        for line in body.split(b"\n\n")
        if line.startswith(b"data: ")
    ]


def _serving_the_model(port: int, name: str) -> None:
    if _get_json(port, "/v2/health/ready") != {"ready": True}:
        raise WrongAnswerError("not ready")
    listed = [model["id"] for model in _get_json(port, "/v3/models")["data"]]
    if listed != [name]:
        raise WrongAnswerError(f"/v3/models lists {listed}, not [{name}]")


def _metric(port: int, family: str, name: str) -> float:
    text = send(port, RawRequest("GET", "/metrics"), timeout=ANSWER_TIMEOUT_SECONDS)
    assert text is not None and text.status == 200, text
    for line in text.body.decode().splitlines():
        if line.startswith(f'{family}{{name="{name}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise WrongAnswerError(f"/metrics has no {family} of {name}")


def _no_generation_left_running(port: int) -> None:
    """Every request the fuzzer made has left the pipeline: generations of clients that went
    away were cancelled, not left to run to their token limit (or forever)."""
    deadline = time.monotonic() + GENERATION_DRAIN_SECONDS
    while (running := _metric(port, "kubevino_generation_requests_running", LLM_NAME)) > 0:
        if time.monotonic() > deadline:
            raise WrongAnswerError(
                f"{running:.0f} generation(s) still running {GENERATION_DRAIN_SECONDS:.0f} s "
                "after the last case: a client's generation outlived it"
            )
        time.sleep(0.2)


def llm_known_valid(port: int, gguf: Path) -> Callable[[], None]:
    """A greedy completion that must be what in-process GenAI generates, and a streamed chat
    that must end in usage and [DONE]."""
    pipeline = genai.LLMPipeline(str(gguf), "CPU")
    prompt_ids = pipeline.get_tokenizer().encode(KNOWN_PROMPT, add_special_tokens=True)
    config = genai.GenerationConfig(max_new_tokens=KNOWN_TOKENS, do_sample=False, ignore_eos=True)
    ids = np.asarray(prompt_ids.input_ids.data, dtype=np.int64)
    generated = pipeline.generate(ov.Tensor(ids), config).tokens[0]
    expected = pipeline.get_tokenizer().decode([int(token) for token in generated])

    def check() -> None:
        _serving_the_model(port, LLM_NAME)
        completion = post_json(
            port,
            "/v3/completions",
            {
                "model": LLM_NAME,
                "prompt": KNOWN_PROMPT,
                "max_tokens": KNOWN_TOKENS,
                "temperature": 0,
                "ignore_eos": True,
            },
        )
        text = strict_json(completion.body)["choices"][0]["text"]
        if text != expected:
            raise WrongAnswerError(f"greedy completion {text!r}, GenAI generates {expected!r}")
        streamed = post_json(
            port,
            "/v1/chat/completions",
            {
                "model": LLM_NAME,
                "messages": [{"role": "user", "content": "hello"}],
                "max_completion_tokens": 4,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        events = sse_events(streamed.body)
        usage = strict_json(events[-2].encode())["usage"] if len(events) >= 2 else None
        if events[-1:] != ["[DONE]"] or usage is None or usage["completion_tokens"] != 4:
            raise WrongAnswerError(f"streamed chat: {streamed.body[-600:]!r}")
        _no_generation_left_running(port)

    return check


def embedding_known_valid(port: int, model: Path) -> Callable[[], None]:
    """Embeddings of two texts, which must be in-process GenAI's (the server's defaults: CLS
    pooling, normalized)."""
    expected = genai.TextEmbeddingPipeline(str(model), "CPU").embed_documents(KNOWN_TEXTS)

    def check() -> None:
        _serving_the_model(port, EMBEDDING_NAME)
        answer = post_json(port, "/v3/embeddings", {"model": EMBEDDING_NAME, "input": KNOWN_TEXTS})
        got = [item["embedding"] for item in strict_json(answer.body)["data"]]
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
            raise WrongAnswerError(f"embeddings {got}, GenAI computes {expected}")

    return check


def rerank_known_valid(port: int, model: Path) -> Callable[[], None]:
    """A ranking of three documents, which must be in-process GenAI's."""
    expected = genai.TextRerankPipeline(str(model), "CPU").rerank(KNOWN_QUERY, KNOWN_DOCUMENTS)

    def check() -> None:
        _serving_the_model(port, RERANK_NAME)
        answer = post_json(
            port,
            "/v3/rerank",
            {"model": RERANK_NAME, "query": KNOWN_QUERY, "documents": KNOWN_DOCUMENTS},
        )
        results = strict_json(answer.body)["results"]
        got = [(result["index"], result["relevance_score"]) for result in results]
        if [index for index, _ in got] != [index for index, _ in expected] or not np.allclose(
            [score for _, score in got], [score for _, score in expected], rtol=1e-5
        ):
            raise WrongAnswerError(f"ranking {got}, GenAI ranks {expected}")

    return check


@contextmanager
def generative_server(
    task: str, model: Path, name: str, tmp_path: Path, max_request_bytes: int, *flags: str
) -> Iterator[RunningServer]:
    args = ["--model_path", str(model), "--model_name", name, "--task", task]
    args += ["--target_device", "CPU", "--metrics_enable"]
    args += ["--max_request_bytes", str(max_request_bytes), *flags]
    with running_server(args, tmp_path) as server:
        server.wait_ready(timeout=120)
        yield server
