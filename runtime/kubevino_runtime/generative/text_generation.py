"""Text generation engines: many requests in flight, none blocking the event loop.

``ContinuousBatchingEngine`` drives one ``ContinuousBatchingPipeline`` from a thread of its own:
requests join with ``add_request`` whenever they arrive, and each ``step()`` advances every
running one, so concurrent requests share each forward pass. After each step the thread tells
each request's coroutine to read what its ``GenerationHandle`` holds.

``SequentialEngine`` is for devices without continuous batching (NPU), where ``LLMPipeline``
generates one request at a time; requests queue for it, each streamed token by token.

Both hand the protocol layer the same ``Generation``: an async iterator of ``Piece``s.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import openvino as ov
import openvino_genai as genai

from kubevino_runtime.errors import ErrorKind, ServingError

log = logging.getLogger("kubevino.generative")

FINISH_REASONS: Final = {
    genai.GenerationFinishReason.STOP: "stop",
    genai.GenerationFinishReason.LENGTH: "length",
    genai.GenerationFinishReason.TOOL_CALL: "tool_calls",
}


@dataclass
class Piece:
    """New tokens of one choice (a sequence of the request), and its end when it ended."""

    index: int
    token_ids: list[int]
    log_probs: list[float]
    finish_reason: str | None = None


@dataclass(frozen=True)
class EngineLoad:
    """What the engine holds after its last step."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0  # fraction of the KV cache in use


@dataclass
class Timing:
    """When a request was submitted, produced its first token and its last one."""

    submitted: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0

    def saw(self, count: int) -> None:
        if count <= 0:
            return
        now = time.monotonic()
        if self.first_token is None:
            self.first_token = now
        self.last_token = now
        self.tokens += count

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.submitted

    @property
    def time_per_output_token(self) -> float | None:
        if self.first_token is None or self.last_token is None or self.tokens < 2:
            return None
        return (self.last_token - self.first_token) / (self.tokens - 1)


class Generation(Protocol):
    timing: Timing

    def pieces(self) -> AsyncIterator[list[Piece]]: ...

    def cancel(self) -> None: ...


class Engine(Protocol):
    # Decoding steps taken since start: each advances every request scheduled in it by one
    # token, so generated tokens per step is what batching buys.
    steps: int

    def submit(self, prompt_ids: list[int], config: genai.GenerationConfig) -> Generation: ...

    def load(self) -> EngineLoad: ...

    def close(self) -> None: ...


def _prompt_tensor(prompt_ids: list[int]) -> ov.Tensor:
    return ov.Tensor(np.array([prompt_ids], dtype=np.int64))


def _finish_reason(output: genai.GenerationOutput) -> str | None:
    return FINISH_REASONS.get(output.finish_reason)


# --- continuous batching ----------------------------------------------------------------------


class _BatchedGeneration:
    """One request in the continuous-batching pipeline, read on the event loop."""

    def __init__(
        self,
        handle: genai.GenerationHandle,
        loop: asyncio.AbstractEventLoop,
        engine: ContinuousBatchingEngine,
        streams_incrementally: bool,
    ) -> None:
        self._handle = handle
        self._loop = loop
        self._engine = engine
        self._streams_incrementally = streams_incrementally
        self._readable = asyncio.Event()
        self._ended = False  # set by the engine thread's last notification
        self._error: str | None = None
        self.timing = Timing()

    def notify(self, ended: bool, error: str | None = None) -> None:
        """From the engine thread, after a step: the handle may hold more."""
        self._loop.call_soon_threadsafe(self._wake, ended, error)

    def _wake(self, ended: bool, error: str | None) -> None:
        self._ended = self._ended or ended
        self._error = self._error or error
        self._readable.set()

    async def pieces(self) -> AsyncIterator[list[Piece]]:
        try:
            while True:
                await self._readable.wait()
                self._readable.clear()
                ended = self._ended  # read before draining: all its outputs are queued
                pieces = self._drain()
                if pieces:
                    self.timing.saw(sum(len(piece.token_ids) for piece in pieces))
                    yield pieces
                if self._error is not None:
                    raise ServingError(ErrorKind.INTERNAL, self._error)
                if ended:
                    status = self._handle.get_status()
                    if status == genai.GenerationStatus.IGNORED:
                        raise ServingError(
                            ErrorKind.OVERLOADED,
                            "the KV cache has no room for this request; retry later, or "
                            "raise --cache_size",
                        )
                    return
        finally:
            self.cancel()

    def _drain(self) -> list[Piece]:
        pieces: list[Piece] = []
        while self._handle.can_read():
            outputs = self._handle.read()
            for index, sequence_id in enumerate(sorted(outputs)):
                output = outputs[sequence_id]
                pieces.append(
                    Piece(
                        index,
                        list(output.generated_ids),
                        list(output.generated_log_probs),
                        _finish_reason(output),
                    )
                )
        return pieces

    def cancel(self) -> None:
        """Stop generating (a client that went away, or the end): the pipeline frees the
        sequence's KV cache at its next step."""
        if (
            self._engine.forget(self)
            and self._handle.get_status() == genai.GenerationStatus.RUNNING
        ):
            self._handle.cancel()
            self._engine.wake()


class ContinuousBatchingEngine:
    def __init__(self, pipeline: genai.ContinuousBatchingPipeline) -> None:
        self._pipeline = pipeline
        self._request_ids = itertools.count()
        self._condition = threading.Condition()
        self._live: set[_BatchedGeneration] = set()
        self._closing = False
        self._load = EngineLoad()
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name="genai-steps", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], config: genai.GenerationConfig) -> Generation:
        handle = self._pipeline.add_request(
            next(self._request_ids), _prompt_tensor(prompt_ids), config
        )
        incremental = config.num_return_sequences == 1 and not config.is_beam_search()
        generation = _BatchedGeneration(
            handle, asyncio.get_running_loop(), self, streams_incrementally=incremental
        )
        with self._condition:
            self._live.add(generation)
            self._condition.notify()
        return generation

    def forget(self, generation: _BatchedGeneration) -> bool:
        with self._condition:
            if generation not in self._live:
                return False
            self._live.discard(generation)
            return True

    def wake(self) -> None:
        with self._condition:
            self._condition.notify()

    def load(self) -> EngineLoad:
        return self._load

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._closing and not self._pipeline.has_non_finished_requests():
                    self._load = EngineLoad()
                    self._condition.wait()
                if self._closing:
                    return
            error = None
            try:
                self._pipeline.step()
                self.steps += 1
            except Exception as failure:  # the pipeline's own failure: every request ends
                log.exception("generation step failed")
                error = f"generation failed: {failure}"
            metrics = self._pipeline.get_metrics()
            self._load = EngineLoad(
                running=metrics.scheduled_requests,
                waiting=max(0, metrics.requests - metrics.scheduled_requests),
                kv_cache_usage=metrics.cache_usage / 100.0,
            )
            with self._condition:
                live = list(self._live)
            for generation in live:
                ended = generation._handle.get_status() != genai.GenerationStatus.RUNNING
                generation.notify(ended or error is not None, error)
            if error is not None:
                # The failed step's requests stay in the pipeline, and every step fails on them
                # again until their coroutines (woken on the event loop) cancel them: hundreds
                # of failed steps. They have ended: cancelled now, the next step drops them.
                for generation in live:
                    generation._handle.cancel()


# --- one request at a time ------------------------------------------------------------------


class _TokenForwarder(genai.StreamerBase):  # type: ignore[misc]
    """LLMPipeline's streamer: each token to the waiting coroutine; cancels when asked."""

    def __init__(self, deliver: Callable[[list[int]], None]) -> None:
        super().__init__()
        self._deliver = deliver
        self.cancelled = False

    def write(self, token: int | list[int]) -> genai.StreamingStatus:
        self._deliver([token] if isinstance(token, int) else list(token))
        if self.cancelled:
            return genai.StreamingStatus.CANCEL
        return genai.StreamingStatus.RUNNING

    def end(self) -> None:
        return None


class _SequentialGeneration:
    def __init__(
        self, engine: SequentialEngine, prompt_ids: list[int], config: genai.GenerationConfig
    ) -> None:
        self._engine = engine
        self._prompt_ids = prompt_ids
        self._config = config
        self._queue: asyncio.Queue[list[Piece] | BaseException | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._forwarder = _TokenForwarder(self._from_thread)
        self.timing = Timing()

    def _from_thread(self, token_ids: list[int]) -> None:
        self._engine.steps += 1  # one request at a time: a step per token
        self._loop.call_soon_threadsafe(self._queue.put_nowait, [Piece(0, token_ids, [])])

    def _generate(self) -> genai.EncodedResults:
        return self._engine.pipeline.generate(
            _prompt_tensor(self._prompt_ids), self._config, self._forwarder
        )

    async def pieces(self) -> AsyncIterator[list[Piece]]:
        async with self._engine.turn:
            task = asyncio.ensure_future(asyncio.to_thread(self._generate))
            task.add_done_callback(lambda _: self._queue.put_nowait(None))
            try:
                while (item := await self._queue.get()) is not None:
                    assert isinstance(item, list)
                    self.timing.saw(sum(len(piece.token_ids) for piece in item))
                    yield item
                results = await task
            finally:
                self.cancel()
                await asyncio.wait([task])
        reason = results.finish_reasons[0] if results.finish_reasons else None
        yield [Piece(0, [], [], FINISH_REASONS.get(reason) if reason else "stop")]

    def cancel(self) -> None:
        self._forwarder.cancelled = True


class SequentialEngine:
    def __init__(self, pipeline: genai.LLMPipeline) -> None:
        self.pipeline = pipeline
        self.turn = asyncio.Lock()
        self._waiting = 0
        self.steps = 0

    def submit(self, prompt_ids: list[int], config: genai.GenerationConfig) -> Generation:
        if config.num_return_sequences != 1:
            raise ServingError(
                ErrorKind.INVALID, "n above 1 needs continuous batching (--pipeline_type LM_CB)"
            )
        return _SequentialGeneration(self, prompt_ids, config)

    def load(self) -> EngineLoad:
        return EngineLoad(running=int(self.turn.locked()))

    def close(self) -> None:
        return None
