"""kubevino-serve's text generation against in-process openvino-genai, side by side in one run.

One GGUF model (a Llama shape with random F16 weights, sized by ``--size``), one set of scheduler
settings, the same prompts everywhere. For each count of concurrent streams (``--streams``,
default 1, 8 and 32), every stream asks for ``--requests`` completions one after the other, each
exactly ``--max-tokens`` tokens long (``ignore_eos``), and the run measures:

* OUTPUT TOKENS/S through kubevino-serve (``/v3/completions``, SSE streaming, real HTTP clients)
  over in-process ``ContinuousBatchingPipeline`` fed the same prompts with the same concurrency.
  Target: >= 0.9 at every stream count.
* TIME TO FIRST TOKEN, p50: the server's minus in-process's. Target: <= 5 ms with one stream
  (with more streams it is printed too; there it also depends on how arrivals meet steps).
* The same load through a one-request-at-a-time server (``LLMPipeline.generate`` behind a lock,
  written below as the minimal server one would write without batching): what batching buys.

The in-process baseline runs before and after the servers, each time with a pipeline of its own
(as the server has), and its mean is the reference; the spread between the two shows the
machine's drift during the run.

Prompts are random word sequences whose first greedy token decodes to whole characters: the
server sends a byte-level token that ends inside a UTF-8 character only with the next one, which
would otherwise add a step to its time to first token and not to in-process's.

Clients are one process of asyncio streams (a few thousand events a second at most, far below
what one process parses). On machines with enough cores they get CPUs of their own
(``--client-cpus``), and the servers and the in-process baseline share the rest.

    python bench/generative.py [--size tiny|small|real] [--streams 1,8,32] [--requests 2]
        [--max-tokens 64] [--prompt-words 48] [--max-num-seqs 256] [--cache-size 0]
        [--enable-prefix-caching true] [--client-cpus K] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import httpx
import numpy as np
import openvino as ov
import openvino_genai as genai
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.serving import running_server

from kubevino_devcluster.ports import free_ports
from kubevino_runtime.demo_generative import WORDS, write_llama_gguf
from kubevino_runtime.generative.pipelines import scheduler_config
from kubevino_runtime.generative.settings import TextGenerationSettings

MODEL_NAME: Final = "bench"
DEVICE: Final = "CPU"
THROUGHPUT_TARGET: Final = 0.9
TTFT_OVERHEAD_TARGET_MS: Final = 5.0


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    feed_forward: int
    vocab: int

    def parameters(self) -> int:
        head_size = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_size
        mlp = 3 * self.hidden * self.feed_forward
        return self.layers * (attention + mlp) + 2 * self.vocab * self.hidden

    def describe(self) -> str:
        return (
            f"hidden {self.hidden}, {self.layers} layers, {self.heads} heads "
            f"({self.kv_heads} KV), FFN {self.feed_forward}, vocab {self.vocab}: "
            f"{self.parameters() / 1e6:.0f}M parameters, F16"
        )


SIZES: Final = {
    # The test suite's model: measures the serving path alone, the model costs next to nothing.
    "tiny": ModelShape(hidden=64, layers=2, heads=4, kv_heads=2, feed_forward=128, vocab=265),
    # A few tens of millions of parameters: a real model's proportions, quick on two cores.
    "small": ModelShape(hidden=512, layers=8, heads=8, kv_heads=4, feed_forward=1408, vocab=8192),
    # Llama 3.2 1B's attention and depth with TinyLlama's FFN and vocabulary: about 0.85B.
    "real": ModelShape(
        hidden=2048, layers=16, heads=32, kv_heads=8, feed_forward=5632, vocab=32000
    ),
}


@dataclass(frozen=True)
class Scheduler:
    max_num_seqs: int
    cache_size_gb: int
    max_num_batched_tokens: int | None
    enable_prefix_caching: bool
    dynamic_split_fuse: bool

    def config(self) -> genai.SchedulerConfig:
        """The server's own translation of these settings, for the in-process side."""
        return scheduler_config(
            TextGenerationSettings(
                max_num_seqs=self.max_num_seqs,
                cache_size_gb=self.cache_size_gb,
                max_num_batched_tokens=self.max_num_batched_tokens,
                enable_prefix_caching=self.enable_prefix_caching,
                dynamic_split_fuse=self.dynamic_split_fuse,
            )
        )

    def serve_flags(self) -> list[str]:
        flags = [
            "--max_num_seqs",
            str(self.max_num_seqs),
            "--cache_size",
            str(self.cache_size_gb),
            "--enable_prefix_caching",
            "true" if self.enable_prefix_caching else "false",
            "--dynamic_split_fuse",
            "true" if self.dynamic_split_fuse else "false",
        ]
        if self.max_num_batched_tokens is not None:
            flags += ["--max_num_batched_tokens", str(self.max_num_batched_tokens)]
        return flags


@dataclass
class LoadResult:
    """One stream count on one side: output tokens over the wall time of the whole load."""

    streams: int
    tokens: int
    seconds: float
    first_token_ms: list[float] = field(default_factory=list)
    # Pipeline steps the load took (each advances every scheduled request by a token): fewer
    # for the same tokens is better batching. From the server's /metrics on its side.
    steps: int | None = None
    # The server's own mean time to first token, from its request's submission to the pipeline
    # (after HTTP, parsing and tokenization) to the first token read on its event loop.
    server_side_ttft_mean_ms: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def ttft_p50_ms(self) -> float:
        return float(np.percentile(self.first_token_ms, 50))

    @property
    def ttft_mean_ms(self) -> float:
        return statistics.mean(self.first_token_ms)


# --- prompts ----------------------------------------------------------------------------------


def _encode(tokenizer: genai.Tokenizer, text: str) -> list[int]:
    # What the server's /v3/completions does with a prompt.
    ids = tokenizer.encode(text, add_special_tokens=True).input_ids
    return [int(token) for token in ids.data[0]]


def _greedy_config(
    pipeline: genai.ContinuousBatchingPipeline, tokens: int
) -> genai.GenerationConfig:
    config = pipeline.get_config()
    config.max_new_tokens = tokens
    config.ignore_eos = True  # random weights: only the length limit may end a stream
    config.do_sample = False
    return config


def choose_prompts(
    model: Path,
    scheduler: Scheduler,
    properties: dict[str, Any],
    count: int,
    words: int,
    seed: int,
) -> list[str]:
    """``count`` distinct prompts whose first greedy token is whole text (see the docstring),
    found with a pipeline of their own so that no measured pipeline has seen them."""
    pipeline = genai.ContinuousBatchingPipeline(str(model), scheduler.config(), DEVICE, properties)
    tokenizer = pipeline.get_tokenizer()
    shuffled = random.Random(seed)
    chosen: list[str] = []
    while len(chosen) < count:
        candidates = [
            " ".join(shuffled.choice(WORDS) for _ in range(words))
            for _ in range(count - len(chosen) + count // 4 + 4)
        ]
        candidates = [text for text in candidates if text not in chosen]
        configs = [_greedy_config(pipeline, 1)] * len(candidates)
        results = pipeline.generate(
            [ov.Tensor(np.array([_encode(tokenizer, text)], np.int64)) for text in candidates],
            configs,
        )
        for text, result in zip(candidates, results, strict=True):
            first = tokenizer.decode([int(result.m_generation_ids[0][0])])
            if "\ufffd" not in first and first and len(chosen) < count:
                chosen.append(text)
    return chosen


def per_stream(prompts: Sequence[str], streams: int, requests: int) -> list[list[str]]:
    """The prompts of each stream, in order; no prompt repeats within a load."""
    return [list(prompts[s * requests : (s + 1) * requests]) for s in range(streams)]


# --- in-process continuous batching ------------------------------------------------------------


def in_process_load(
    pipeline: genai.ContinuousBatchingPipeline, prompts: list[list[str]], max_tokens: int
) -> LoadResult:
    """Each stream's next request joins the pipeline as soon as its previous one finished, as a
    client's does; the caller's thread steps the pipeline (the server's engine thread does the
    same, plus telling each request's coroutine)."""
    tokenizer = pipeline.get_tokenizer()
    config = _greedy_config(pipeline, max_tokens)
    queues = [deque(_encode(tokenizer, text) for text in stream) for stream in prompts]
    running: dict[int, tuple[genai.GenerationHandle, int, float, list[float]]] = {}
    request_ids = iter(range(1 << 30))
    first_token_ms: list[float] = []
    tokens = 0
    steps = 0

    def submit(stream: int) -> None:
        if queues[stream]:
            ids = ov.Tensor(np.array([queues[stream].popleft()], np.int64))
            handle = pipeline.add_request(next(request_ids), ids, config)
            running[id(handle)] = (handle, stream, time.perf_counter(), [])

    started = time.perf_counter()
    for stream in range(len(prompts)):
        submit(stream)
    while running:
        pipeline.step()
        steps += 1
        now = time.perf_counter()
        for key, (handle, stream, submitted, seen) in list(running.items()):
            while handle.can_read():
                for output in handle.read().values():
                    if output.generated_ids and not seen:
                        first_token_ms.append((now - submitted) * 1e3)
                        seen.append(now)
                    tokens += len(output.generated_ids)
            if handle.get_status() != genai.GenerationStatus.RUNNING:
                del running[key]
                submit(stream)
    return LoadResult(
        len(prompts), tokens, time.perf_counter() - started, first_token_ms, steps=steps
    )


# --- HTTP clients ------------------------------------------------------------------------------


async def _stream_requests(
    session: aiohttp.ClientSession, url: str, prompts: list[str], max_tokens: int
) -> tuple[int, list[float]]:
    tokens = 0
    first_token_ms: list[float] = []
    for prompt in prompts:
        body = {
            "model": MODEL_NAME,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        submitted = time.perf_counter()
        first: float | None = None
        usage: int | None = None
        async with session.post(url, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status} {await response.text()}")
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:].strip()
                if payload == b"[DONE]":
                    break
                event = json.loads(payload)
                if "error" in event:
                    raise RuntimeError(f"{url}: {event['error']}")
                if first is None and any(choice.get("text") for choice in event["choices"]):
                    first = time.perf_counter()
                if event.get("usage"):
                    usage = int(event["usage"]["completion_tokens"])
        if first is None or usage is None:
            raise RuntimeError(f"{url}: a stream without text or usage")
        first_token_ms.append((first - submitted) * 1e3)
        tokens += usage
    return tokens, first_token_ms


async def _http_load(url: str, prompts: list[list[str]], max_tokens: int) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        done = await asyncio.gather(
            *(_stream_requests(session, url, stream, max_tokens) for stream in prompts)
        )
        seconds = time.perf_counter() - started
    return LoadResult(
        len(prompts),
        sum(tokens for tokens, _ in done),
        seconds,
        [ms for _, latencies in done for ms in latencies],
    )


def scrape(base: str) -> dict[str, float]:
    """The server's /metrics, each family's samples summed over their labels."""
    totals: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            family = name.split("{")[0]
            totals[family] = totals.get(family, 0.0) + float(value)
    return totals


def served_load(
    clients: ProcessPoolExecutor, base: str, prompts: list[list[str]], max_tokens: int
) -> LoadResult:
    """A load through kubevino-serve, with what its /metrics saw of it."""
    before = scrape(base)
    result = http_load(clients, f"{base}/v3/completions", prompts, max_tokens)
    after = scrape(base)

    def grew(family: str) -> float:
        return after.get(family, 0.0) - before.get(family, 0.0)

    result.steps = int(grew("kubevino_generation_steps"))
    first_tokens = grew("kubevino_time_to_first_token_seconds_count")
    if first_tokens:
        result.server_side_ttft_mean_ms = (
            grew("kubevino_time_to_first_token_seconds_sum") / first_tokens * 1e3
        )
    return result


def _client_process(url: str, prompts: list[list[str]], max_tokens: int) -> LoadResult:
    return asyncio.run(_http_load(url, prompts, max_tokens))


def _pin(cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def client_pool(cpus: list[int]) -> ProcessPoolExecutor:
    """The one client process of the run, on CPUs of its own where there are any."""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(1, mp_context=spawn, initializer=_pin, initargs=(cpus,))


def http_load(
    clients: ProcessPoolExecutor, url: str, prompts: list[list[str]], max_tokens: int
) -> LoadResult:
    return clients.submit(_client_process, url, prompts, max_tokens).result()


# --- the one-request-at-a-time server -----------------------------------------------------------


class _TokenQueue(genai.StreamerBase):  # type: ignore[misc]
    """LLMPipeline's streamer: each token to the request's coroutine."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[list[int] | None]):
        super().__init__()
        self._loop = loop
        self._queue = queue

    def write(self, token: int | list[int]) -> genai.StreamingStatus:
        tokens = [token] if isinstance(token, int) else list(token)
        self._loop.call_soon_threadsafe(self._queue.put_nowait, tokens)
        return genai.StreamingStatus.RUNNING

    def end(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)


def serve_one_at_a_time(model: Path, port: int, properties: dict[str, Any]) -> None:
    """``/v3/completions`` streaming only, over ``LLMPipeline``: requests wait for a lock and
    generate one after the other."""
    pipeline = genai.LLMPipeline(str(model), DEVICE, **properties)
    tokenizer = pipeline.get_tokenizer()
    turn = asyncio.Lock()

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        config = pipeline.get_generation_config()
        config.max_new_tokens = int(body["max_tokens"])
        config.ignore_eos = bool(body.get("ignore_eos", False))
        config.do_sample = False
        ids = ov.Tensor(np.array([_encode(tokenizer, body["prompt"])], np.int64))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        generated = 0
        async with turn:
            queue: asyncio.Queue[list[int] | None] = asyncio.Queue()
            streamer = _TokenQueue(asyncio.get_running_loop(), queue)
            generation = asyncio.ensure_future(
                asyncio.to_thread(pipeline.generate, ids, config, streamer)
            )
            while (tokens := await queue.get()) is not None:
                generated += len(tokens)
                event = {"choices": [{"index": 0, "text": tokenizer.decode(tokens)}]}
                await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            await generation
        usage = {"choices": [], "usage": {"completion_tokens": generated}}
        await response.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ready")

    app = web.Application()
    app.add_routes([web.post("/v3/completions", completions), web.get("/ready", ready)])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


@contextmanager
def one_at_a_time_server(model: Path, log: Path, properties: dict[str, Any]) -> Iterator[str]:
    """This file's one-at-a-time server in a process of its own; yields its base URL."""
    (port,) = free_ports(1)
    command = [
        sys.executable,
        __file__,
        "--serve-one-at-a-time",
        str(model),
        "--port",
        str(port),
        "--plugin-config",
        json.dumps(properties),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def wait_until_ready(url: str, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s:\n{log.read_text()}")


# --- the run -----------------------------------------------------------------------------------


def _true_or_false(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError("true or false")
    return text.lower() == "true"


def _span(cpus: list[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--streams", default="1,8,32", help="concurrent stream counts, in order")
    parser.add_argument("--requests", type=int, default=2, help="completions per stream")
    parser.add_argument(
        "--single-stream-requests",
        type=int,
        default=8,
        help="completions of the one-stream load (its time to first token is the one the "
        "target is about)",
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens every completion has")
    parser.add_argument("--prompt-words", type=int, default=48)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--cache-size", type=int, default=0, help="KV cache GB, 0: grows")
    parser.add_argument("--max-num-batched-tokens", type=int, default=None)
    parser.add_argument("--enable-prefix-caching", type=_true_or_false, default=True)
    parser.add_argument("--dynamic-split-fuse", type=_true_or_false, default=True)
    parser.add_argument(
        "--plugin-config",
        default="{}",
        help="OpenVINO properties (JSON) for every side: the server's --plugin_config, the "
        "in-process pipelines' and the one-at-a-time server's properties",
    )
    parser.add_argument(
        "--one-at-a-time-streams",
        default=None,
        help="stream counts for the LLMPipeline server (default: all of --streams; it serves "
        "one request at a time, so its tokens/s is the same at every count and only its time "
        "to first token grows; '' leaves it out)",
    )
    parser.add_argument(
        "--client-cpus",
        type=int,
        default=None,
        help="CPUs kept for the clients, the rest for the servers and in-process "
        "(default: a quarter on 8 or more CPUs, none below)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--seed", type=int, default=1)
    # The one-at-a-time server's own process (started by the run, not by hand).
    parser.add_argument("--serve-one-at-a-time", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    properties: dict[str, Any] = json.loads(args.plugin_config)
    if args.serve_one_at_a_time:
        serve_one_at_a_time(args.serve_one_at_a_time, args.port, properties)
        return 0

    cpus = sorted(os.sched_getaffinity(0))
    reserved = (
        args.client_cpus
        if args.client_cpus is not None
        else (len(cpus) // 4 if len(cpus) >= 8 else 0)
    )
    server_cpus, client_cpus = cpus[: len(cpus) - reserved], cpus[len(cpus) - reserved :]
    # The servers and the in-process baseline inherit this: the same cores on every side.
    os.sched_setaffinity(0, server_cpus)
    shape = SIZES[args.size]
    scheduler = Scheduler(
        args.max_num_seqs,
        args.cache_size,
        args.max_num_batched_tokens,
        args.enable_prefix_caching,
        args.dynamic_split_fuse,
    )
    stream_counts = [int(count) for count in args.streams.split(",")]
    single_counts = (
        stream_counts
        if args.one_at_a_time_streams is None
        else [int(count) for count in args.one_at_a_time_streams.split(",") if count]
    )
    print(
        f"model {args.size}: {shape.describe()}\n"
        f"{args.requests} completions per stream ({args.single_stream_requests} with one "
        f"stream), {args.max_tokens} tokens each, prompts of {args.prompt_words} words; "
        f"scheduler {asdict(scheduler)}; properties {properties}\n"
        f"servers and in-process on {len(server_cpus)} CPUs ({_span(server_cpus)}), clients on "
        f"{_span(client_cpus) if client_cpus else 'the same CPUs'}",
        flush=True,
    )
    started = time.perf_counter()

    def phase(name: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {name}", flush=True)

    results: dict[str, dict[int, LoadResult]] = {
        "in_process_before": {},
        "server": {},
        "one_at_a_time": {},
        "in_process_after": {},
    }
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        workdir = Path(scratch)
        model = write_llama_gguf(
            workdir / "model",
            hidden=shape.hidden,
            layers=shape.layers,
            heads=shape.heads,
            kv_heads=shape.kv_heads,
            feed_forward=shape.feed_forward,
            vocab_size=shape.vocab,
            # The tiny model keeps the test suite's weights; deeper ones need smaller ones.
            weight_scale=0.2 if args.size == "tiny" else shape.hidden**-0.5,
        )
        phase(f"wrote the model, {model.stat().st_size / 2**20:.0f} MiB")

        requests = {
            streams: args.single_stream_requests if streams == 1 else args.requests
            for streams in stream_counts
        }
        widest = max(stream_counts)
        needed = sum(streams * requests[streams] for streams in stream_counts) + widest
        prompts = choose_prompts(model, scheduler, properties, needed, args.prompt_words, args.seed)
        warm_up = per_stream(prompts, widest, 1)
        loads: dict[int, list[list[str]]] = {}
        offset = widest
        for streams in stream_counts:
            loads[streams] = per_stream(prompts[offset:], streams, requests[streams])
            offset += streams * requests[streams]
        phase(f"chose {needed} prompts; loading the pipelines and the servers")

        serve_args = [
            "--task",
            "text_generation",
            "--model_path",
            str(model),
            "--model_name",
            MODEL_NAME,
            "--target_device",
            DEVICE,
            *scheduler.serve_flags(),
            "--metrics_enable",
            *(["--plugin_config", json.dumps(properties)] if properties else []),
        ]
        server = stack.enter_context(running_server(serve_args, workdir))
        single_log = workdir / "one-at-a-time.log"
        single = (
            stack.enter_context(one_at_a_time_server(model, single_log, properties))
            if single_counts
            else ""
        )
        clients = stack.enter_context(client_pool(client_cpus))
        # A pipeline of its own for each in-process pass: none sees a prompt twice (prefix
        # caching), as neither server does.
        before, after = (
            genai.ContinuousBatchingPipeline(str(model), scheduler.config(), DEVICE, properties)
            for _ in range(2)
        )
        server.wait_ready(timeout=600)
        if single:
            wait_until_ready(f"{single}/ready", single_log)
        tokens = args.max_tokens
        sides: dict[str, Callable[[list[list[str]]], LoadResult]] = {
            "in_process_before": lambda load: in_process_load(before, load, tokens),
            "server": lambda load: served_load(clients, server.rest, load, tokens),
            "one_at_a_time": lambda load: http_load(
                clients, f"{single}/v3/completions", load, tokens
            ),
            "in_process_after": lambda load: in_process_load(after, load, tokens),
        }
        phase("warming up")
        for name, run in sides.items():
            if name != "one_at_a_time":
                run(warm_up)  # every batch shape of the run, and a KV cache grown to fit it
            elif single:
                run(warm_up[:1])  # one request at a time: one is as warm as any
        # Each stream count on every side before the next: the sides of a ratio are measured
        # minutes apart at most, whatever the machine does meanwhile.
        for streams in stream_counts:
            for name, run in sides.items():
                if name == "one_at_a_time" and streams not in single_counts:
                    continue
                phase(f"{streams} streams: {name}")
                results[name][streams] = run(loads[streams])
        phase("done")

    summary = report(args, shape, stream_counts, requests, results)
    summary["cpus"] = {"servers": len(server_cpus), "clients": len(client_cpus)}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _cell(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def report(
    args: argparse.Namespace,
    shape: ModelShape,
    stream_counts: list[int],
    requests: dict[int, int],
    results: dict[str, dict[int, LoadResult]],
) -> dict[str, Any]:
    before, after = results["in_process_before"], results["in_process_after"]
    served, one_at_a_time = results["server"], results["one_at_a_time"]
    for side, runs in results.items():
        for streams, run in runs.items():
            expected = streams * requests[streams] * args.max_tokens
            if run.tokens != expected:
                print(f"WARNING: {side}, {streams} streams: {run.tokens} tokens, not {expected}")

    rows: list[dict[str, Any]] = []
    for streams in stream_counts:
        local = statistics.mean(
            [before[streams].tokens_per_second, after[streams].tokens_per_second]
        )
        local_ttft = statistics.mean([before[streams].ttft_p50_ms, after[streams].ttft_p50_ms])
        server = served[streams]
        single = one_at_a_time.get(streams)
        rows.append(
            {
                "streams": streams,
                "requests_per_stream": requests[streams],
                "in_process_tokens_per_s": local,
                "in_process_before_tokens_per_s": before[streams].tokens_per_second,
                "in_process_after_tokens_per_s": after[streams].tokens_per_second,
                "in_process_drift": abs(
                    before[streams].tokens_per_second - after[streams].tokens_per_second
                )
                / local,
                "server_tokens_per_s": server.tokens_per_second,
                "ratio": server.tokens_per_second / local,
                "one_at_a_time_tokens_per_s": single.tokens_per_second if single else None,
                "batching_gain": server.tokens_per_second / single.tokens_per_second
                if single
                else None,
                "ttft_p50_in_process_ms": local_ttft,
                "ttft_p50_server_ms": server.ttft_p50_ms,
                "ttft_overhead_ms": server.ttft_p50_ms - local_ttft,
                "ttft_p50_one_at_a_time_ms": single.ttft_p50_ms if single else None,
                "ttft_mean_in_process_ms": statistics.mean(
                    [before[streams].ttft_mean_ms, after[streams].ttft_mean_ms]
                ),
                "ttft_mean_server_ms": server.ttft_mean_ms,
                "ttft_mean_server_side_ms": server.server_side_ttft_mean_ms,
                "steps_in_process": statistics.mean(
                    [before[streams].steps or 0, after[streams].steps or 0]
                ),
                "steps_server": server.steps,
            }
        )

    print(
        "\n         output tokens/s                                          "
        "  time to first token, p50 (ms)"
    )
    print(
        f"{'streams':>7} {'in-process':>10} {'drift':>6} {'server':>9} {'ratio':>6} "
        f"{'1-at-a-time':>11} {'batching':>8}   {'in-proc':>8} {'server':>8} {'overhead':>8} "
        f"{'1-at-a-time':>11}"
    )
    for row in rows:
        print(
            f"{row['streams']:>7} {row['in_process_tokens_per_s']:>10.1f} "
            f"{row['in_process_drift']:>6.1%} {row['server_tokens_per_s']:>9.1f} "
            f"{row['ratio']:>6.3f} {_cell(row['one_at_a_time_tokens_per_s'], '11.1f'):>11} "
            f"{_cell(row['batching_gain'], '7.2f') + 'x':>8}   "
            f"{row['ttft_p50_in_process_ms']:>8.1f} {row['ttft_p50_server_ms']:>8.1f} "
            f"{row['ttft_overhead_ms']:>+8.1f} "
            f"{_cell(row['ttft_p50_one_at_a_time_ms'], '11.1f'):>11}"
        )
    print(
        "(in-process: mean of the passes before and after the servers, drift their difference; "
        "batching: server tokens/s over the one-at-a-time server's)"
    )
    print(
        "\nwhere the server's time goes: pipeline steps per load (the same tokens in more steps "
        "is worse batching),\nand mean time to first token in-process, at the client, and "
        "inside the server (from submission to the pipeline to the first token on its loop)"
    )
    print(
        f"{'streams':>7} {'steps in-proc':>13} {'server':>7}   {'TTFT mean in-proc':>17} "
        f"{'client':>8} {'in server':>9}"
    )
    for row in rows:
        print(
            f"{row['streams']:>7} {row['steps_in_process']:>13.0f} "
            f"{_cell(row['steps_server'], '7d'):>7}   {row['ttft_mean_in_process_ms']:>17.1f} "
            f"{row['ttft_mean_server_ms']:>8.1f} "
            f"{_cell(row['ttft_mean_server_side_ms'], '9.1f'):>9}"
        )

    throughput_met = all(row["ratio"] >= THROUGHPUT_TARGET for row in rows)
    ratios = ", ".join(f"{row['streams']}: {row['ratio']:.3f}" for row in rows)
    single_stream = next((row for row in rows if row["streams"] == 1), rows[0])
    ttft_met = single_stream["ttft_overhead_ms"] <= TTFT_OVERHEAD_TARGET_MS
    print(
        f"\ntarget: server/in-process tokens/s >= {THROUGHPUT_TARGET} at every stream count: "
        f"{'met' if throughput_met else 'NOT met'} ({ratios})"
    )
    print(
        f"target: TTFT p50 overhead <= {TTFT_OVERHEAD_TARGET_MS:.0f} ms with "
        f"{single_stream['streams']} stream(s): {'met' if ttft_met else 'NOT met'} "
        f"({single_stream['ttft_overhead_ms']:+.1f} ms)"
    )
    return {
        "size": args.size,
        "shape": asdict(shape),
        "parameters": shape.parameters(),
        "max_tokens": args.max_tokens,
        "prompt_words": args.prompt_words,
        "scheduler": {
            "max_num_seqs": args.max_num_seqs,
            "cache_size_gb": args.cache_size,
            "max_num_batched_tokens": args.max_num_batched_tokens,
            "enable_prefix_caching": args.enable_prefix_caching,
            "dynamic_split_fuse": args.dynamic_split_fuse,
        },
        "properties": json.loads(args.plugin_config),
        "rows": rows,
        "throughput_target": THROUGHPUT_TARGET,
        "throughput_target_met": throughput_met,
        "ttft_overhead_target_ms": TTFT_OVERHEAD_TARGET_MS,
        "ttft_target_met": ttft_met,
    }


if __name__ == "__main__":
    sys.exit(main())
