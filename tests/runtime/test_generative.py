"""kubevino-serve --task: Model Server's OpenAI-compatible endpoints over openvino-genai, shown
with the official openai client on tiny models built at test time (no downloads)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import openvino as ov
import openvino_genai as genai
import pytest

from kubevino_runtime.demo_generative import (
    write_embedding_model,
    write_llama_gguf,
    write_rerank_model,
)
from kubevino_runtime.errors import ServingError
from kubevino_runtime.generative.pipelines import scheduler_config
from kubevino_runtime.generative.settings import TextGenerationSettings
from kubevino_runtime.generative.text_generation import ContinuousBatchingEngine
from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime

MODEL = "tiny-llama"
TOKENS = 24
# Without an end-of-text token the random model would stop where it happens to emit one.
FULL_LENGTH = {"ignore_eos": True}


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_gguf(tmp_path_factory.mktemp("llm"))


def _serve(model: Path, task: str, tmp_path: Path, *flags: str) -> Iterator[RunningServer]:
    with running_server(
        [
            "--model_path",
            str(model),
            "--model_name",
            MODEL,
            "--task",
            task,
            "--target_device",
            "CPU",
            "--metrics_enable",
            *flags,
        ],
        tmp_path,
    ) as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="module")
def llm_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _serve(
        gguf,
        "text_generation",
        tmp_path_factory.mktemp("llm-server"),
        "--max_num_seqs",
        "32",
        "--cache_size",
        "1",
        "--enable_prefix_caching",
        "false",
        "--dynamic_split_fuse",
        "true",
        "--max_num_batched_tokens",
        "512",
    )


def _client(server: RunningServer, prefix: str = "/v3") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.rest + prefix, api_key="unused", max_retries=0)


def _greedy_in_process(gguf: Path, prompt_ids: list[int], tokens: int) -> list[int]:
    pipeline = genai.LLMPipeline(str(gguf), "CPU")
    config = genai.GenerationConfig(max_new_tokens=tokens, do_sample=False, ignore_eos=True)
    result = pipeline.generate(ov.Tensor(np.array([prompt_ids], dtype=np.int64)), config)
    return [int(token) for token in result.tokens[0]]


def _tokenizer(gguf: Path) -> genai.Tokenizer:
    return genai.LLMPipeline(str(gguf), "CPU").get_tokenizer()


def _ids(tokenizer: genai.Tokenizer, text: str, *, special: bool) -> list[int]:
    encoded = tokenizer.encode(text, add_special_tokens=special).input_ids.data[0]
    return [int(token) for token in encoded]


def _metric(server: RunningServer, family: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(f'{family}{{name="{MODEL}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {family}")


# --- text generation -----------------------------------------------------------------------------


def test_ready_once_loaded_and_models_list_the_served_model(llm_server: RunningServer) -> None:
    assert httpx.get(f"{llm_server.rest}/v2/health/ready").json() == {"ready": True}
    for prefix in ("/v3", "/v3/v1", "/v1"):
        models = _client(llm_server, prefix).models.list()
        assert [model.id for model in models.data] == [MODEL]
    # GET /v1/models/NAME is TF-Serving's model status, in Model Server as here.
    for prefix in ("/v3", "/v3/v1"):
        assert _client(llm_server, prefix).models.retrieve(MODEL).owned_by == "OVMS"
    # vLLM's context length field rides along; OpenAI's client keeps it as an extra.
    listed = _client(llm_server).models.list().data[0]
    assert (listed.model_extra or {})["max_model_len"] == 2048


def test_chat_completion_is_greedy_genai_on_the_chat_template(
    llm_server: RunningServer, gguf: Path
) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is the capital of france"},
    ]
    reply = _client(llm_server).chat.completions.create(
        model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, extra_body=FULL_LENGTH
    )
    tokenizer = _tokenizer(gguf)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    expected = _greedy_in_process(gguf, _ids(tokenizer, prompt, special=False), TOKENS)
    assert reply.choices[0].message.content == tokenizer.decode(expected)
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == TOKENS
    assert reply.usage.prompt_tokens == len(_ids(tokenizer, prompt, special=False))


# A template no model has: the answer tells whether it was the one applied.
CUSTOM_TEMPLATE = (
    "{% for message in messages %}<<{{ message['role'] }}>> {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}"
)


def _chat_with(server: RunningServer, messages: list[Any]) -> str:
    reply = _client(server).chat.completions.create(
        model=MODEL, messages=messages, max_tokens=TOKENS, temperature=0, extra_body=FULL_LENGTH
    )
    return reply.choices[0].message.content or ""


def _greedy_chat_on(gguf: Path, template: str, messages: list[Any]) -> str:
    tokenizer = _tokenizer(gguf)
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, chat_template=template
    )
    assert prompt.startswith("<<user>> ")  # the custom template, not the model's
    text: str = tokenizer.decode(
        _greedy_in_process(gguf, _ids(tokenizer, prompt, special=False), TOKENS)
    )
    return text


def test_a_chat_template_file_or_chat_template_jinja_beside_the_model_replaces_the_models(
    gguf: Path, tmp_path: Path
) -> None:
    messages: list[Any] = [{"role": "user", "content": "what is the capital of france"}]
    expected = _greedy_chat_on(gguf, CUSTOM_TEMPLATE, messages)
    template = tmp_path / "template.jinja"
    template.write_text(CUSTOM_TEMPLATE)
    flagged = ("--chat_template_file", str(template), "--enable_prefix_caching", "false")
    for server in _serve(gguf, "text_generation", tmp_path, *flagged):
        assert _chat_with(server, messages) == expected
    beside = tmp_path / "with-template"
    beside.mkdir()
    shutil.copy(gguf, beside / gguf.name)
    (beside / "chat_template.jinja").write_text(CUSTOM_TEMPLATE)  # Model Server's rule
    for server in _serve(beside, "text_generation", tmp_path, "--enable_prefix_caching", "false"):
        assert _chat_with(server, messages) == expected


def test_an_unreadable_chat_template_stops_the_start_and_says_which(
    gguf: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.jinja"
    args = ["--task", "text_generation", "--model_path", str(gguf), "--model_name", MODEL,
            "--chat_template_file", str(missing)]  # fmt: skip
    with running_server(args, tmp_path, wait_live=False) as server:
        assert server.process.wait(60) == 1
    assert f"chat template {missing} cannot be read" in server.termination_log.read_text()


def test_completion_streams_what_the_whole_answer_says_then_usage_and_done(
    llm_server: RunningServer, gguf: Path
) -> None:
    client = _client(llm_server)
    whole = client.completions.create(
        model=MODEL, prompt="the cat sat on", max_tokens=TOKENS, extra_body=FULL_LENGTH
    )
    stream = client.completions.create(
        model=MODEL,
        prompt="the cat sat on",
        max_tokens=TOKENS,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=FULL_LENGTH,
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].text
    tokenizer = _tokenizer(gguf)
    expected = _greedy_in_process(gguf, _ids(tokenizer, "the cat sat on", special=True), TOKENS)
    assert text == tokenizer.decode(expected)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS
    raw = httpx.post(
        f"{llm_server.rest}/v3/completions",
        json={"model": MODEL, "prompt": "hello", "max_tokens": 3, "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_a_stop_string_ends_the_answer_before_it_with_finish_reason_stop(
    llm_server: RunningServer,
) -> None:
    client = _client(llm_server)
    prompt = "paris is the capital of"
    free = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=TOKENS, extra_body=FULL_LENGTH
    ).choices[0]
    # A printable character of the greedy answer after its start, which must end it there
    # (one character: GenAI matches stop strings by tokens, and this toy vocabulary spells a
    # string several ways).
    stop = next(char for char in free.text[3:] if char.isalnum())
    stopped = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=TOKENS, stop=[stop], extra_body=FULL_LENGTH
    ).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]


def test_sampling_with_a_seed_repeats_and_n_gives_several_choices(
    llm_server: RunningServer,
) -> None:
    client = _client(llm_server)
    settings: dict[str, Any] = {
        "model": MODEL,
        "prompt": "hello world",
        "max_tokens": 12,
        "temperature": 1.5,
        "top_p": 0.9,
        "seed": 1234,
        "extra_body": {**FULL_LENGTH, "top_k": 50},
    }
    first = client.completions.create(**settings)
    again = client.completions.create(**settings)
    assert first.choices[0].text == again.choices[0].text
    several = client.completions.create(**settings, n=3)
    assert [choice.index for choice in several.choices] == [0, 1, 2]
    assert several.usage is not None and several.usage.completion_tokens == 36


def test_logprobs_are_genais_for_the_chosen_tokens(llm_server: RunningServer) -> None:
    reply = _client(llm_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=6,
        logprobs=True,
        extra_body=FULL_LENGTH,
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == 6
    assert all(entry.logprob <= 0 for entry in logprobs.content)


def test_curl_streams_server_sent_events_that_end_with_done(llm_server: RunningServer) -> None:
    body = {"model": MODEL, "prompt": "the cat", "max_tokens": 8, "stream": True, **FULL_LENGTH}
    done = subprocess.run(
        ["curl", "-sS", "-N", "--fail-with-body", "-H", "Content-Type: application/json",
         "-d", json.dumps(body), f"{llm_server.rest}/v3/completions"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    events = [line.removeprefix("data: ") for line in done.stdout.splitlines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks)


def test_concurrent_requests_are_batched_not_queued(llm_server: RunningServer) -> None:
    """Twelve requests of 96 tokens at once share the pipeline's decoding steps: one request at
    a time would take 12 x 96 steps. Counted in steps, not timed (the speed itself is the
    bench's business), so a busy machine cannot make it fail."""
    client = openai.AsyncOpenAI(base_url=llm_server.rest + "/v3", api_key="x", max_retries=0)
    tokens, requests = 96, 12

    async def one(index: int) -> int:
        reply = await client.completions.create(
            model=MODEL,
            prompt=f"the dog {index}",
            max_tokens=tokens,
            extra_body=FULL_LENGTH,
        )
        assert reply.usage is not None
        return reply.usage.completion_tokens

    async def together() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(requests)))

    steps_before = _metric(llm_server, "kubevino_generation_steps")
    generated_before = _metric(llm_server, "kubevino_generated_tokens")
    assert asyncio.run(together()) == [tokens] * requests
    steps = _metric(llm_server, "kubevino_generation_steps") - steps_before
    generated = _metric(llm_server, "kubevino_generated_tokens") - generated_before
    assert generated == tokens * requests
    # At least three requests per step on average; one at a time would be exactly one.
    assert steps <= generated / 3, f"{generated:.0f} tokens took {steps:.0f} steps"


def test_a_client_that_disconnects_cancels_its_generation(llm_server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "prompt": "a long story",
        "max_tokens": 1900,
        "stream": True,
        "ignore_eos": True,
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{llm_server.rest}/v3/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        llm_server.wait_for(
            lambda: _metric(llm_server, "kubevino_generation_requests_running") == 1, 10, "running"
        )
    llm_server.wait_for(
        lambda: _metric(llm_server, "kubevino_generation_requests_running") == 0,
        10,
        "done with the cancelled request",
    )
    generated = _metric(llm_server, "kubevino_generated_tokens")
    time.sleep(0.5)
    assert _metric(llm_server, "kubevino_generated_tokens") == generated


def test_generation_metrics_count_tokens_and_time_them(llm_server: RunningServer) -> None:
    before = _metric(llm_server, "kubevino_generated_tokens")
    _client(llm_server).completions.create(
        model=MODEL, prompt="hello", max_tokens=5, extra_body=FULL_LENGTH
    )
    assert _metric(llm_server, "kubevino_generated_tokens") == before + 5
    assert _metric(llm_server, "kubevino_prompt_tokens") > 0
    text = httpx.get(f"{llm_server.rest}/metrics").text
    for family in (
        "kubevino_time_to_first_token_seconds_count",
        "kubevino_time_per_output_token_seconds_count",
        "kubevino_kv_cache_usage_ratio",
        "kubevino_generation_requests_waiting",
    ):
        assert f'{family}{{name="{MODEL}"}}' in text


# --- client mistakes ----------------------------------------------------------------------------

CHAT = "/v3/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        (CHAT, b"{not json", 400, None),
        (CHAT, b'{"model": "tiny-llama", "messages": [], "temperature": NaN}', 400, None),
        (CHAT, b"[1, 2]", 400, None),
        (CHAT, {"model": "other", "messages": HELLO}, 404, None),
        (CHAT, {"model": MODEL}, 400, "messages"),
        (CHAT, {"model": MODEL, "messages": []}, 400, "messages"),
        (CHAT, {"model": MODEL, "messages": HELLO, "max_tokens": -1}, 400, "max_tokens"),
        (CHAT, {"model": MODEL, "messages": HELLO, "max_tokens": "10"}, 400, "max_tokens"),
        (CHAT, {"model": MODEL, "messages": HELLO, "temperature": 7}, 400, "temperature"),
        (CHAT, {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400, None),
        (CHAT, {"model": MODEL, "messages": HELLO, "n": 0}, 400, "n"),
        (CHAT, {"model": MODEL, "messages": HELLO, "stream_options": {}}, 400, None),
        ("/v3/completions", {"model": MODEL, "prompt": 5}, 400, "prompt"),
        ("/v3/embeddings", {"model": MODEL, "input": "x"}, 400, None),
        # Found by the fuzz tier (tests/fuzz/generative): each was a 500 or worse.
        (
            CHAT,
            b'{"model": "tiny-llama", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            400,
            None,
        ),
        ("/v3/completions", b'{"model": "tiny-llama", "prompt": "\\ud800"}', 400, None),
        ("/v3/completions", {"model": MODEL, "prompt": "", "max_tokens": 3}, 400, "prompt"),
        (CHAT, {"model": MODEL, "messages": HELLO, "max_tokens": 2**64}, 400, "max_tokens"),
        (CHAT, {"model": MODEL, "messages": HELLO, "max_completion_tokens": 2**64}, 400, None),
        (CHAT, {"model": MODEL, "messages": HELLO, "temperature": 1, "seed": 2**70}, 400, "seed"),
        (CHAT, {"model": MODEL, "messages": HELLO, "temperature": 1, "top_k": 2**70}, 400, "top_k"),
        (CHAT, {"model": MODEL, "messages": HELLO, "stop": ""}, 400, "stop"),
        (CHAT, {"model": MODEL, "messages": HELLO, "n": 2, "stop": ["x", ""]}, 400, None),
    ],
)
def test_client_mistakes_are_4xx_with_openais_error_object(
    llm_server: RunningServer, path: str, body: Any, status: int, param: str | None
) -> None:
    url = llm_server.rest + path
    response = (
        httpx.post(url, content=body) if isinstance(body, bytes) else httpx.post(url, json=body)
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def test_the_openai_client_raises_its_own_errors_for_them(llm_server: RunningServer) -> None:
    client = _client(llm_server)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nothing", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[], max_tokens=3)


def test_max_tokens_past_the_context_is_refused_rather_than_generated(
    llm_server: RunningServer,
) -> None:
    """GenAI would generate past the context (garbage, for minutes with ignore_eos): a limit
    that does not fit after the prompt is refused, saying how many tokens would."""
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 100_000, "ignore_eos": True}
    started = time.monotonic()
    response = httpx.post(f"{llm_server.rest}/v3/completions", json=body, timeout=30)
    assert time.monotonic() - started < 5
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "max_tokens"
    found = re.search(
        r"past the model's context of 2048 tokens; ask for at most (\d+)$", error["message"]
    )
    assert found, error["message"]
    body["max_tokens"] = int(found[1])  # the rest of the context, which is generated
    response = httpx.post(f"{llm_server.rest}/v3/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["completion_tokens"] == int(found[1])
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 2048


def test_a_temperature_too_small_for_genai_is_greedy_decoding(llm_server: RunningServer) -> None:
    """GenAI keeps the temperature as a float32: 5e-324 is 0 there, which it refuses for
    sampling (this was a 400 for a valid request)."""
    body: dict[str, Any] = {"model": MODEL, "prompt": "the cat", "max_tokens": 8, **FULL_LENGTH}
    greedy = httpx.post(f"{llm_server.rest}/v3/completions", json={**body, "temperature": 0})
    tiny = httpx.post(f"{llm_server.rest}/v3/completions", json={**body, "temperature": 5e-324})
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]


def test_wrong_methods_and_unknown_paths_get_openais_error_object(
    llm_server: RunningServer,
) -> None:
    for method, path, status in [
        ("GET", "/v3/chat/completions", 405),
        ("PUT", "/v1/embeddings", 405),
        ("POST", "/v3/models", 405),
        ("DELETE", "/v3/completions", 405),
    ]:
        response = httpx.request(method, llm_server.rest + path, json={})
        assert response.status_code == status, (method, path, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"], error
    # TF-Serving's /v1/models/NAME keeps TF-Serving's error.
    response = httpx.post(f"{llm_server.rest}/v1/models/{MODEL}")
    assert response.status_code == 405 and isinstance(response.json()["error"], str)


def _idle(server: RunningServer) -> bool:
    """No generation running or waiting in the pipeline."""
    running = _metric(server, "kubevino_generation_requests_running")
    return running == 0 and _metric(server, "kubevino_generation_requests_waiting") == 0


def test_clients_that_go_away_mid_answer_cancel_their_generation_and_log_no_error(
    llm_server: RunningServer,
) -> None:
    """Streamed or not: aiohttp does not cancel a handler whose client left, so the server
    notices itself, and a closed chat window is no error (it logged a traceback per stream)."""
    # The module's server is shared: a request an earlier test abandoned may still be
    # finishing, and "on" below means this test's request alone.
    llm_server.wait_for(lambda: _idle(llm_server), 60, "idle before the test")
    log_before = len(llm_server.log())
    generated = _metric(llm_server, "kubevino_generated_tokens")
    for stream in (True, False):
        body = {"model": MODEL, "prompt": "a long story", "max_tokens": 1900, "stream": stream}
        payload = json.dumps({**body, **FULL_LENGTH}).encode()
        head = f"POST /v3/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}"
        with socket.create_connection(("127.0.0.1", llm_server.rest_port)) as client:
            client.sendall(head.encode() + b"\r\n\r\n" + payload)
            if stream:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            llm_server.wait_for(
                lambda: _metric(llm_server, "kubevino_generation_requests_running") == 1, 10, "on"
            )
        llm_server.wait_for(lambda: _idle(llm_server), 10, "done with the abandoned request")
    assert _metric(llm_server, "kubevino_generated_tokens") - generated < 2 * 1900
    assert "Traceback" not in llm_server.log()[log_before:]


def test_a_failed_generation_step_ends_its_requests_and_the_engine_serves_on(
    gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request GenAI's step fails on (beam search with an empty stop string, which the API
    now refuses) stayed in the pipeline, failing every step after it until its coroutine got
    to cancel it: hundreds of failed steps, logged each. The engine cancels it at once."""
    settings = TextGenerationSettings(cache_size_gb=1)
    pipeline = genai.ContinuousBatchingPipeline(str(gguf), scheduler_config(settings), "CPU", {})
    engine = ContinuousBatchingEngine(pipeline)
    prompt = [48, 49, 50]

    async def failing_then_fine() -> list[int]:
        broken = pipeline.get_config()
        broken.num_beams = broken.num_return_sequences = 2
        broken.max_new_tokens = 1
        broken.stop_strings = {""}
        with pytest.raises(ServingError, match="generation failed"):
            async for _ in engine.submit(prompt, broken).pieces():
                pass
        fine = pipeline.get_config()
        fine.max_new_tokens = 3
        fine.ignore_eos = True
        batches = [pieces async for pieces in engine.submit(prompt, fine).pieces()]
        return [token for pieces in batches for piece in pieces for token in piece.token_ids]

    try:
        assert len(asyncio.run(failing_then_fine())) == 3
    finally:
        engine.close()
    failed_steps = [r for r in caplog.records if r.getMessage() == "generation step failed"]
    assert len(failed_steps) == 1


def test_kv_cache_precision_u8_serves_from_an_8_bit_cache(gguf: Path, tmp_path: Path) -> None:
    for server in _serve(gguf, "text_generation", tmp_path, "--kv_cache_precision", "u8"):
        reply = _client(server).completions.create(
            model=MODEL, prompt="the cat", max_tokens=8, extra_body=FULL_LENGTH
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 8


def test_pipeline_type_lm_serves_with_llm_pipeline_the_same_greedy_text(
    gguf: Path, tmp_path: Path
) -> None:
    for server in _serve(gguf, "text_generation", tmp_path, "--pipeline_type", "LM"):
        reply = _client(server).completions.create(
            model=MODEL, prompt="the cat", max_tokens=TOKENS, extra_body=FULL_LENGTH
        )
        tokenizer = _tokenizer(gguf)
        expected = _greedy_in_process(gguf, _ids(tokenizer, "the cat", special=True), TOKENS)
        assert reply.choices[0].text == tokenizer.decode(expected)
        assert "one request at a time (LLMPipeline)" in server.log()
        diagnostics = httpx.get(f"{server.rest}/kubevino/diagnostics").json()["generative"]
        assert diagnostics["pipeline"] == "LLMPipeline"


# --- embeddings and rerank -----------------------------------------------------------------------


def test_embeddings_are_genais_with_the_pooling_and_normalization_flags(tmp_path: Path) -> None:
    model = write_embedding_model(tmp_path / "embeddings")
    texts = ["the cat sat on the mat", "paris is the capital of france"]
    for server in _serve(
        model, "embeddings", tmp_path, "--pooling", "MEAN", "--normalize", "false"
    ):
        client = _client(server)
        as_floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
        as_base64 = client.embeddings.create(model=MODEL, input=texts)  # the client's default
        config = genai.TextEmbeddingPipeline.Config()
        config.pooling_type = genai.TextEmbeddingPipeline.PoolingType.MEAN
        config.normalize = False
        expected = genai.TextEmbeddingPipeline(str(model), "CPU", config).embed_documents(texts)
        for served in (as_floats, as_base64):
            np.testing.assert_allclose(
                [item.embedding for item in served.data], expected, rtol=1e-5
            )
        assert not np.isclose(np.linalg.norm(expected[0]), 1.0)
        assert as_floats.usage.prompt_tokens > 0


def test_rerank_orders_documents_as_genai_does(tmp_path: Path) -> None:
    model = write_rerank_model(tmp_path / "rerank")
    query, documents = "the cat", ["the dog sat", "paris is the capital", "cat on the mat"]
    expected = genai.TextRerankPipeline(str(model), "CPU").rerank(query, documents)
    for server in _serve(model, "rerank", tmp_path):
        response = httpx.post(
            f"{server.rest}/v3/rerank",
            json={
                "model": MODEL,
                "query": query,
                "documents": documents,
                "top_n": 2,
                "return_documents": True,
            },
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["index"] for r in results] == [index for index, _ in expected[:2]]
        assert [r["document"]["text"] for r in results] == [documents[i] for i, _ in expected[:2]]
        np.testing.assert_allclose(
            [r["relevance_score"] for r in results], [s for _, s in expected[:2]], rtol=1e-5
        )
        wrong = _client(server).chat.completions.create
        with pytest.raises(openai.BadRequestError, match="serves --task rerank"):
            wrong(model=MODEL, messages=[{"role": "user", "content": "hi"}])


@pytest.fixture(scope="module")
def rerank_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rerank_model(tmp_path_factory.mktemp("rerank"))


@pytest.fixture(scope="module")
def rerank_server(
    rerank_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from _serve(rerank_model, "rerank", tmp_path_factory.mktemp("rerank-server"))


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    model = write_embedding_model(tmp_path_factory.mktemp("embeddings"))
    yield from _serve(model, "embeddings", tmp_path_factory.mktemp("embedding-server"))


def test_a_long_query_with_many_short_documents_is_ranked_pair_by_pair(
    rerank_server: RunningServer, rerank_model: Path
) -> None:
    """GenAI pairs the query with several documents inside the tokenizer, whose pair step
    writes past its buffer once the query outgrows them: this request aborted the server. Each
    document is scored alone, as GenAI scores a single pair."""
    query, documents = "the cat sat on the mat", ["cat", "dog", "mat", "sat", "on"]
    response = httpx.post(
        f"{rerank_server.rest}/v3/rerank",
        json={"model": MODEL, "query": query, "documents": documents},
    )
    assert response.status_code == 200, response.text
    alone = genai.TextRerankPipeline(str(rerank_model), "CPU")
    expected = sorted(
        ((index, alone.rerank(query, [doc])[0][1]) for index, doc in enumerate(documents)),
        key=lambda pair: pair[1],
        reverse=True,
    )
    results = response.json()["results"]
    assert [r["index"] for r in results] == [index for index, _ in expected]
    np.testing.assert_allclose(
        [r["relevance_score"] for r in results], [s for _, s in expected], rtol=1e-5
    )
    assert rerank_server.process.poll() is None


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v3/embeddings", {"input": ""}, "input"),
        # GenAI embedded a batch of empty texts as one vector (one answer for two inputs).
        ("/v3/embeddings", {"input": ["", ""]}, "input[0]"),
        ("/v3/embeddings", {"input": ["the cat", "  "]}, "input[1]"),
        # An empty query with an empty document failed inside GenAI's rerank graph (a 500).
        ("/v3/rerank", {"query": "", "documents": [""]}, "query"),
        ("/v3/rerank", {"query": "the cat", "documents": ["mat", " "]}, "documents[1]"),
    ],
)
def test_texts_with_nothing_to_read_are_refused(
    embedding_server: RunningServer,
    rerank_server: RunningServer,
    path: str,
    body: dict[str, Any],
    param: str,
) -> None:
    server = embedding_server if path.endswith("embeddings") else rerank_server
    response = httpx.post(server.rest + path, json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "nothing to" in error["message"]


# --- a model that will not load --------------------------------------------------------------


def test_a_generative_model_that_fails_to_load_gives_up_after_model_wait_seconds(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 60)  # the magic, then nothing a reader can use
    args = ["--model_path", str(broken), "--model_name", MODEL, "--task", "text_generation"]
    args += ["--target_device", "CPU", "--model_wait_seconds", "1"]
    with running_server(args, tmp_path, wait_live=False) as server:
        assert server.process.wait(120) == 1, server.log()
        message = server.termination_log.read_text()
    assert message.startswith("kubevino-serve gave up after 1 s: model tiny-llama:"), message
    assert "failed to load" in message
