"""The OpenAI calls answered by GenAI in this process: prompts through the chat template and
the tokenizer, generation on the model's engine, tokens back into text, responses and stream
events as OpenAI's documents. The HTTP side (``openai_http``) has checked each request already;
this runs in the one server process, or in the engine process for the front ends of
``--workers N`` (``engine_calls``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import openvino_genai as genai

from kubevino_runtime.errors import ServingError
from kubevino_runtime.generative import openai_protocol as api
from kubevino_runtime.generative.encoders import NothingToReadError
from kubevino_runtime.generative.facts import Endpoint
from kubevino_runtime.generative.openai_protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RequestError,
    RerankRequest,
)
from kubevino_runtime.generative.pipelines import TextGenerator
from kubevino_runtime.generative.service import GenerativeService
from kubevino_runtime.generative.text_generation import Generation, Piece

log = logging.getLogger("kubevino.generative")
# Sampling this cold is greedy decoding. GenAI keeps the temperature as a float32, where one
# below about 1e-45 is 0 (which it refuses for sampling) and one a little larger divides the
# logits into infinities.
MIN_SAMPLING_TEMPERATURE = 1e-5
Documents = AsyncGenerator[dict[str, Any], None]


@dataclass
class _Choice:
    """What one choice has produced so far."""

    token_ids: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    finish_reason: str | None = None


class GenAiAnswers:
    """``facts.Answers`` from the service's pipeline."""

    def __init__(self, service: GenerativeService) -> None:
        self.service = service

    def answer(
        self, endpoint: Endpoint, document: dict[str, Any], client_gone: Callable[[], bool]
    ) -> Documents:
        if endpoint is Endpoint.CHAT:
            return self._chat(api.parse_request(ChatCompletionRequest, document), client_gone)
        if endpoint is Endpoint.COMPLETIONS:
            completion = api.parse_request(CompletionRequest, document)
            return self._completion(completion, client_gone)
        if endpoint is Endpoint.EMBEDDINGS:
            return self._embeddings(api.parse_request(EmbeddingRequest, document))
        return self._rerank(api.parse_request(RerankRequest, document))

    # --- text generation ---------------------------------------------------------------------

    async def _chat(
        self, chat: ChatCompletionRequest, client_gone: Callable[[], bool]
    ) -> Documents:
        generator = self.service.text_generator(chat.model)
        history = [{"role": m.role, "content": m.text()} for m in chat.messages]
        try:
            prompt = generator.tokenizer.apply_chat_template(history, add_generation_prompt=True)
        except RuntimeError as error:  # the template's own refusal (e.g. roles out of order)
            raise RequestError(
                f"messages: the chat template refused them: {error}", "messages"
            ) from None
        # The template writes the special tokens the model expects itself.
        prompt_ids = _encode(generator, prompt, add_special_tokens=False)
        async for document in self._generate(chat, generator, prompt_ids, True, client_gone):
            yield document

    async def _completion(
        self, completion: CompletionRequest, client_gone: Callable[[], bool]
    ) -> Documents:
        generator = self.service.text_generator(completion.model)
        prompt_ids = _encode(generator, completion.prompt, add_special_tokens=True)
        async for document in self._generate(completion, generator, prompt_ids, False, client_gone):
            yield document

    async def _generate(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        generator: TextGenerator,
        prompt_ids: list[int],
        chat: bool,
        client_gone: Callable[[], bool],
    ) -> Documents:
        config = generation_config(body, generator, len(prompt_ids))
        self.service.started()
        generation = generator.engine.submit(prompt_ids, config)
        try:
            if body.stream:
                async for event in self._events(body, generator, generation, prompt_ids, chat):
                    yield event
                return
            choices = await _collect(generation, body.n, client_gone=client_gone)
            if choices is None:
                return  # nobody is left to read the answer; the generation is cancelled below
            yield self._response(body, generator, prompt_ids, chat, choices)
        finally:
            generation.cancel()  # a no-op once finished; frees the sequence when the client left
            self.service.count_generation(len(prompt_ids), generation.timing)
            self.service.ended()

    def _response(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        generator: TextGenerator,
        prompt_ids: list[int],
        chat: bool,
        choices: list[_Choice],
    ) -> dict[str, Any]:
        completion_tokens = sum(len(choice.token_ids) for choice in choices)
        rendered = []
        for index, choice in enumerate(choices):
            text = generator.tokenizer.decode(choice.token_ids)
            entry: dict[str, Any] = {"index": index, "finish_reason": choice.finish_reason}
            entry["logprobs"] = _logprobs(
                body, generator, choice.token_ids, choice.log_probs, 0, chat
            )
            if chat:
                entry["message"] = {"role": "assistant", "content": text}
            else:
                entry["text"] = text
            rendered.append(entry)
        return {
            "id": api.new_id("chatcmpl" if chat else "cmpl"),
            "object": "chat.completion" if chat else "text_completion",
            "created": api.now(),
            "model": self.service.name,
            "choices": rendered,
            "usage": api.usage(len(prompt_ids), completion_tokens),
        }

    async def _events(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        generator: TextGenerator,
        generation: Generation,
        prompt_ids: list[int],
        chat: bool,
    ) -> Documents:
        identifier = api.new_id("chatcmpl" if chat else "cmpl")
        created = api.now()
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": identifier,
                "object": kind,
                "created": created,
                "model": self.service.name,
                "choices": choices,
                **extra,
            }

        texts = [_Detokenizer(generator.tokenizer) for _ in range(body.n)]
        offsets = [0] * body.n
        completion_tokens = 0
        if chat:
            yield chunk([_delta(i, {"role": "assistant", "content": ""}) for i in range(body.n)])
        try:
            async for pieces in generation.pieces():
                for piece in pieces:
                    completion_tokens += len(piece.token_ids)
                    text = texts[piece.index].add(
                        piece.token_ids, final=piece.finish_reason is not None
                    )
                    if not text and piece.finish_reason is None:
                        continue
                    logprobs = _logprobs(
                        body,
                        generator,
                        piece.token_ids,
                        piece.log_probs,
                        offsets[piece.index],
                        chat,
                    )
                    offsets[piece.index] += len(text)
                    if chat:
                        choice = _delta(piece.index, {"content": text} if text else {})
                    else:
                        choice = {"index": piece.index, "text": text}
                    choice["finish_reason"] = piece.finish_reason
                    choice["logprobs"] = logprobs
                    yield chunk([choice])
        except ServingError as error:
            # The stream has begun: the error travels as an event, as OpenAI's do.
            yield api.error_body(error)
        if body.include_usage:
            yield chunk([], usage=api.usage(len(prompt_ids), completion_tokens))

    # --- encoders ----------------------------------------------------------------------------

    async def _embeddings(self, body: EmbeddingRequest) -> Documents:
        embedder = self.service.embedder(body.model)
        self.service.started()
        try:
            vectors, tokens = await embedder.embed(body.texts())
        except NothingToReadError as empty:
            where = "input" if isinstance(body.input, str) else f"input[{empty.index}]"
            raise _nothing_to_read(where, "embed") from None
        finally:
            self.service.ended()
        yield {
            "object": "list",
            "data": api.embedding_data(vectors, body.encoding_format),
            "model": self.service.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _rerank(self, body: RerankRequest) -> Documents:
        reranker = self.service.reranker(body.model)
        self.service.started()
        try:
            ranked, tokens = await reranker.rerank(body.query, body.documents)
        except NothingToReadError as empty:
            where = "query" if empty.index == 0 else f"documents[{empty.index - 1}]"
            raise _nothing_to_read(where, "rank") from None
        finally:
            self.service.ended()
        results = []
        for index, score in ranked[: body.top_n or len(ranked)]:
            result: dict[str, Any] = {"index": index, "relevance_score": score}
            if body.return_documents:
                result["document"] = {"text": body.documents[index]}
            results.append(result)
        yield {"id": api.new_id("rerank"), "results": results, "usage": {"total_tokens": tokens}}


def _nothing_to_read(where: str, verb: str) -> RequestError:
    return RequestError(
        f"{where}: the text is empty, or only what the tokenizer drops (spaces, invisible "
        f"characters): there is nothing to {verb}",
        where,
    )


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def _encode(generator: TextGenerator, text: str, *, add_special_tokens: bool) -> list[int]:
    ids = generator.tokenizer.encode(text, add_special_tokens=add_special_tokens).input_ids
    return [int(token) for token in ids.data[0]]


def generation_config(
    body: ChatCompletionRequest | CompletionRequest, generator: TextGenerator, prompt_length: int
) -> genai.GenerationConfig:
    """The request's sampling settings as GenAI's; what GenAI refuses is the client's mistake."""
    context = generator.context_length
    if prompt_length == 0:
        # GenAI cannot start from nothing ("Prompt length cannot be 0").
        raise RequestError(
            f"{body.prompt_field}: the prompt encodes to no tokens; give at least one",
            body.prompt_field,
        )
    if context is not None and prompt_length >= context:
        raise RequestError(
            f"the prompt is {prompt_length} tokens; the model's context holds {context}",
            body.prompt_field,
        )
    config = generator.default_config()
    limit = body.token_limit()
    if limit is not None and context is not None and prompt_length + limit > context:
        # GenAI would go on past the context (for minutes, with ignore_eos) and write noise.
        field_name = body.token_limit_field()
        raise RequestError(
            f"{field_name}: {limit} tokens after a prompt of {prompt_length} go past the "
            f"model's context of {context} tokens; ask for at most {context - prompt_length}",
            field_name,
        )
    if limit is not None:
        config.max_new_tokens = limit
    elif context is not None:
        config.max_length = context  # until the end of text, or of the context
    sampling = body.temperature is not None and body.temperature >= MIN_SAMPLING_TEMPERATURE
    config.do_sample = sampling
    if sampling:
        config.temperature = body.temperature or 1.0
        config.top_p = body.top_p if body.top_p is not None else 1.0
        if body.top_k is not None and body.top_k > 0:
            config.top_k = body.top_k
        if body.seed is not None:
            config.rng_seed = body.seed
    config.num_return_sequences = body.n
    if body.n > 1 and not sampling:
        config.num_beams = body.n  # several answers without sampling: beam search's best n
    config.stop_strings = body.stop_strings()
    config.include_stop_str_in_output = body.include_stop_str_in_output
    config.ignore_eos = body.ignore_eos
    if body.frequency_penalty is not None:
        config.frequency_penalty = body.frequency_penalty
    if body.presence_penalty is not None:
        config.presence_penalty = body.presence_penalty
    if body.repetition_penalty is not None:
        config.repetition_penalty = body.repetition_penalty
    if (isinstance(body, ChatCompletionRequest) and body.logprobs) or (
        isinstance(body, CompletionRequest) and body.logprobs
    ):
        config.logprobs = 1
    try:
        config.validate()
    except RuntimeError as error:
        raise RequestError(f"GenAI refuses these settings: {error}") from None
    return config


async def _collect(
    generation: Generation, n: int, *, client_gone: Callable[[], bool]
) -> list[_Choice] | None:
    """Every choice's tokens once generated; None as soon as the client has gone away (aiohttp
    does not cancel a handler whose client left, and generating for nobody wastes the device)."""
    choices = [_Choice() for _ in range(n)]
    pieces: AsyncIterator[list[Piece]] = generation.pieces()
    async for batch in pieces:
        if client_gone():
            return None
        for piece in batch:
            choice = choices[piece.index]
            choice.token_ids += piece.token_ids
            choice.log_probs += piece.log_probs
            choice.finish_reason = piece.finish_reason or choice.finish_reason
    return choices


def _logprobs(
    body: ChatCompletionRequest | CompletionRequest,
    generator: TextGenerator,
    token_ids: list[int],
    log_probs: list[float],
    offset: int,
    chat: bool,
) -> dict[str, Any] | None:
    if not body.logprobs or not log_probs:
        return None
    tokens = [generator.tokenizer.decode([token]) for token in token_ids]
    if chat:
        return api.chat_logprobs(tokens, log_probs)
    return api.completion_logprobs(tokens, log_probs, offset)


class _Detokenizer:
    """Text of a growing token list, handed out as it becomes final: a character whose bytes
    have not all arrived (byte-level tokens) waits for the rest."""

    def __init__(self, tokenizer: genai.Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._sent = 0

    def add(self, token_ids: list[int], *, final: bool) -> str:
        self._ids += token_ids
        text: str = self._tokenizer.decode(self._ids)
        ready = text if final else text.rstrip("\ufffd")
        new = ready[self._sent :]
        self._sent = max(self._sent, len(ready))
        return new
