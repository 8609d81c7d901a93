"""``--task ... --workers N``: one engine process owns the GenAI pipeline (continuous batching
for text generation), N lean front ends speak OpenAI's API and forward each checked request
to it; answers come back piece by piece. Shown with the official openai client on tiny models
built at test time, against GenAI's own answers in this process."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import openvino_genai as genai
import pytest

from kubevino_runtime.demo_generative import (
    write_embedding_model,
    write_llama_gguf,
    write_rerank_model,
)
from tests.harness.genai_reference import greedy_chat, greedy_completion
from tests.runtime.serving import RunningServer, running_server
from tests.runtime.test_workers import (
    _alive,
    _connection_owner,
    _front_ends_of,
    _openvino_libraries,
    _wait_until,
)

pytestmark = pytest.mark.runtime

MODEL = "tiny-llama"
FRONT_ENDS = 3
TOKENS = 24
FULL_LENGTH = {"ignore_eos": True}  # the random model would stop where it emits end-of-text
LONG = 1900  # tokens that take the engine a while (the context holds 2048)


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_gguf(tmp_path_factory.mktemp("llm"))


def _args(model: Path, task: str, workers: int = FRONT_ENDS) -> list[str]:
    return [
        *("--model_path", str(model), "--model_name", MODEL, "--task", task),
        *("--target_device", "CPU", "--metrics_enable", "--workers", str(workers)),
        *(
            ("--cache_size", "1", "--enable_prefix_caching", "false")
            if task == "text_generation"
            else ()
        ),
    ]


@pytest.fixture(scope="module")
def llm_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        _args(gguf, "text_generation"), tmp_path_factory.mktemp("llm-workers")
    ) as server:
        server.wait_ready()
        yield server


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.rest + "/v3", api_key="unused", max_retries=0)


def _metric(server: RunningServer, family: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(f'{family}{{name="{MODEL}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0  # a counter shows once the engine has counted something


def _running(server: RunningServer) -> float:
    return _metric(server, "kubevino_generation_requests_running")


def _idle(server: RunningServer) -> bool:
    return _running(server) == 0 and _metric(server, "kubevino_generation_requests_waiting") == 0


def _stream_request(server: RunningServer, prompt: str, tokens: int) -> socket.socket:
    """A streaming completion sent on a raw connection (read with ``_events``)."""
    body = json.dumps(
        {
            "model": MODEL,
            "prompt": prompt,
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **FULL_LENGTH,
        }
    ).encode()
    head = f"POST /v3/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    connection = socket.create_connection(("127.0.0.1", server.rest_port))
    connection.sendall(head.encode() + body)
    return connection


def _read_all(connection: socket.socket, received: bytes = b"") -> bytes:
    """The response to its last chunk (the connection stays open) or until the server closes."""
    while not received.endswith(b"\r\n0\r\n\r\n") and (part := connection.recv(65536)):
        received += part
    return received


def _events(raw: bytes) -> list[Any]:
    """The JSON events of a chunked SSE response (chunk sizes stripped), [DONE] last."""
    body = raw.split(b"\r\n\r\n", 1)[1].decode()
    found = []
    for line in body.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


# --- one pipeline, lean front ends ------------------------------------------------------------


def test_one_engine_process_holds_genai_and_the_front_ends_none(
    llm_server: RunningServer,
) -> None:
    front_ends = _front_ends_of(llm_server)
    assert len(front_ends) == FRONT_ENDS
    diagnostics = httpx.get(f"{llm_server.rest}/kubevino/diagnostics").json()
    assert diagnostics["processes"] == {"engine": llm_server.process.pid, "frontEnds": front_ends}
    assert diagnostics["answeredBy"] in front_ends
    assert diagnostics["generative"]["pipeline"] == "ContinuousBatchingPipeline"
    engine_libraries = " ".join(_openvino_libraries(llm_server.process.pid))
    assert "openvino_genai" in engine_libraries
    # Not a library of OpenVINO's in any front end: one copy of the model, lean front ends.
    assert {pid: _openvino_libraries(pid) for pid in front_ends} == {
        pid: set() for pid in front_ends
    }


def test_chat_and_completions_equal_genai_in_process_from_every_front_end(
    llm_server: RunningServer, gguf: Path
) -> None:
    messages: list[Any] = [{"role": "user", "content": "what is the capital of france"}]
    expected_chat = greedy_chat(gguf, messages, TOKENS)
    expected_completion = greedy_completion(gguf, "the cat sat", TOKENS)
    front_ends = set(_front_ends_of(llm_server))
    answered_by: set[int] = set()
    for _ in range(12):  # new connections, spread over the front ends by the kernel
        client = _client(llm_server)
        chat = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, extra_body=FULL_LENGTH
        )
        assert chat.choices[0].message.content == expected_chat
        assert chat.usage is not None and chat.usage.completion_tokens == TOKENS
        completion = client.completions.create(
            model=MODEL, prompt="the cat sat", max_tokens=TOKENS, extra_body=FULL_LENGTH
        )
        assert completion.choices[0].text == expected_completion
        assert completion.choices[0].finish_reason == "length"
        client.close()
        answered_by.add(httpx.get(f"{llm_server.rest}/kubevino/diagnostics").json()["answeredBy"])
    assert answered_by <= front_ends and len(answered_by) >= 2


def test_streams_arrive_in_several_chunks_that_make_the_whole_answer(
    llm_server: RunningServer, gguf: Path
) -> None:
    stream = _client(llm_server).completions.create(
        model=MODEL,
        prompt="the cat sat",
        max_tokens=TOKENS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=FULL_LENGTH,
    )
    chunks = list(stream)
    texts = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert len(texts) >= 3
    assert "".join(texts) == greedy_completion(gguf, "the cat sat", TOKENS)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS
    chat = _client(llm_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=TOKENS,
        temperature=0,
        stream=True,
        extra_body=FULL_LENGTH,
    )
    deltas = [chunk.choices[0].delta for chunk in chat]
    assert deltas[0].role == "assistant"
    assert "".join(delta.content or "" for delta in deltas) == greedy_chat(
        gguf, [{"role": "user", "content": "hello"}], TOKENS
    )


def test_requests_from_several_front_ends_share_the_pipelines_steps(
    llm_server: RunningServer,
) -> None:
    """Nine requests of 96 tokens at once, through at least two front ends, share the one
    pipeline's decoding steps (one at a time would take 9 x 96 steps). Counted in steps,
    not timed."""
    tokens, requests = 96, 9
    llm_server.wait_for(lambda: _idle(llm_server), 60, "idle before the test")
    steps_before = _metric(llm_server, "kubevino_generation_steps")
    generated_before = _metric(llm_server, "kubevino_generated_tokens")
    connections = [_stream_request(llm_server, f"the dog {i}", tokens) for i in range(requests)]
    front_ends = _front_ends_of(llm_server)
    owners = {
        _connection_owner(front_ends, connection.getsockname()[1], llm_server.rest_port)
        for connection in connections
    }
    assert len(owners) >= 2
    for connection in connections:
        events = _events(_read_all(connection))
        connection.close()
        assert events[-2]["usage"]["completion_tokens"] == tokens

    def generated() -> float:
        return _metric(llm_server, "kubevino_generated_tokens") - generated_before

    def steps() -> float:
        return _metric(llm_server, "kubevino_generation_steps") - steps_before

    llm_server.wait_for(lambda: generated() == tokens * requests, 30, "counted")
    llm_server.wait_for(lambda: steps() >= tokens, 30, "steps published")  # the least possible
    assert steps() <= generated() / 3, f"{generated():.0f} tokens took {steps():.0f} steps"


def test_client_mistakes_are_4xx_from_the_front_end_or_the_engine(
    llm_server: RunningServer,
) -> None:
    url = f"{llm_server.rest}/v3/completions"
    # Refused by the front end's checks.
    unknown = httpx.post(url, json={"model": "other", "prompt": "hi"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    wrong = httpx.post(url, json={"model": MODEL, "prompt": 3})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "prompt"
    # Refused in the engine (it holds the tokenizer): the field at fault crosses the channel.
    too_long = httpx.post(url, json={"model": MODEL, "prompt": "hi", "max_tokens": 5000})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "max_tokens"
    assert "context of 2048 tokens" in too_long.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        _client(llm_server).completions.create(model=MODEL, prompt="hi", max_tokens=5000)


def test_a_client_that_leaves_frees_its_generation_and_the_server_serves_on(
    llm_server: RunningServer, gguf: Path
) -> None:
    """Streamed (the front end's write fails) or not (the engine asks now and then whether
    the client is still there): the front end tells the engine, which stops generating."""
    llm_server.wait_for(lambda: _idle(llm_server), 60, "idle before the test")
    generated = _metric(llm_server, "kubevino_generated_tokens")
    for stream in (True, False):
        body = {"model": MODEL, "prompt": "a long story", "max_tokens": LONG, "stream": stream}
        payload = json.dumps({**body, **FULL_LENGTH}).encode()
        head = f"POST /v3/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}"
        with socket.create_connection(("127.0.0.1", llm_server.rest_port)) as client:
            client.sendall(head.encode() + b"\r\n\r\n" + payload)
            if stream:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            llm_server.wait_for(lambda: _running(llm_server) == 1, 30, "generating")
        llm_server.wait_for(lambda: _idle(llm_server), 30, "done with the abandoned request")
    assert _metric(llm_server, "kubevino_generated_tokens") - generated < 2 * LONG
    reply = _client(llm_server).completions.create(
        model=MODEL, prompt="the cat sat", max_tokens=TOKENS, extra_body=FULL_LENGTH
    )
    assert reply.choices[0].text == greedy_completion(gguf, "the cat sat", TOKENS)
    assert "Traceback" not in llm_server.log()


# --- drain and crash ----------------------------------------------------------------------------


def test_sigterm_drains_an_in_flight_stream_to_its_end(gguf: Path, tmp_path: Path) -> None:
    with running_server(_args(gguf, "text_generation"), tmp_path) as server:
        server.wait_ready()
        connection = _stream_request(server, "a long story", LONG)
        start = connection.recv(4096)
        assert start.startswith(b"HTTP/1.1 200")
        server.wait_for(lambda: _running(server) == 1, 30, "generating")
        server.process.send_signal(signal.SIGTERM)
        events = _events(_read_all(connection, start))
        connection.close()
        assert server.process.wait(60) == 0
        assert events[-1] == "[DONE]"
        assert events[-2]["usage"]["completion_tokens"] == LONG  # every token generated
        assert events[-3]["choices"][0]["finish_reason"] == "length"
        log = server.log()
        assert "finishing in-flight ones in every front end" in log
        assert log.count("]: stopped") == FRONT_ENDS


def test_a_front_end_killed_mid_stream_stops_the_server_non_zero(
    gguf: Path, tmp_path: Path
) -> None:
    with running_server(_args(gguf, "text_generation"), tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        connection = _stream_request(server, "a long story", LONG)
        owner = _connection_owner(front_ends, connection.getsockname()[1], server.rest_port)
        server.wait_for(lambda: _running(server) == 1, 30, "generating")
        os.kill(owner, signal.SIGKILL)
        assert server.process.wait(60) == 128 + signal.SIGKILL
        assert _wait_until(lambda: not any(_alive(pid) for pid in front_ends), 10)
        assert f"front end {owner} ended with status -9 while serving" in server.log()
        connection.close()


# --- embeddings and rerank ----------------------------------------------------------------------


def test_embeddings_and_rerank_through_front_ends_equal_genai_in_process(tmp_path: Path) -> None:
    texts = ["the cat sat on the mat", "paris is the capital of france"]
    embeddings = write_embedding_model(tmp_path / "embeddings")
    with running_server(_args(embeddings, "embeddings"), tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        assert {pid: _openvino_libraries(pid) for pid in front_ends} == {
            pid: set() for pid in front_ends
        }
        expected = genai.TextEmbeddingPipeline(str(embeddings), "CPU").embed_documents(texts)
        for _ in range(4):
            client = _client(server)
            served = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
            np.testing.assert_allclose(
                [item.embedding for item in served.data], expected, rtol=1e-5
            )
            client.close()
        # An answer larger than one channel record (some 1.4 MB): it travels in fragments.
        many = [f"text number {index} about the cat" for index in range(2000)]
        big = _client(server).embeddings.create(model=MODEL, input=many, encoding_format="float")
        expected_many = genai.TextEmbeddingPipeline(str(embeddings), "CPU").embed_documents(many)
        np.testing.assert_allclose([item.embedding for item in big.data], expected_many, rtol=1e-5)
    rerank = write_rerank_model(tmp_path / "rerank")
    query, documents = "the cat", ["the dog sat", "paris is the capital", "cat on the mat"]
    expected_ranks = genai.TextRerankPipeline(str(rerank), "CPU").rerank(query, documents)
    with running_server(_args(rerank, "rerank"), tmp_path) as server:
        server.wait_ready()
        ranked = httpx.post(
            f"{server.rest}/v3/rerank",
            json={"model": MODEL, "query": query, "documents": documents},
        ).json()["results"]
        assert [result["index"] for result in ranked] == [index for index, _ in expected_ranks]
        np.testing.assert_allclose(
            [result["relevance_score"] for result in ranked],
            [score for _, score in expected_ranks],
            rtol=1e-5,
        )
