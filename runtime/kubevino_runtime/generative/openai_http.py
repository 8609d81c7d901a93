"""Model Server's OpenAI-compatible REST endpoints, under /v3/, /v3/v1/ and /v1/: the HTTP side.

Each request is parsed and checked here (every client mistake a 4xx with OpenAI's error object
before anything reaches GenAI); the answers come from ``Answers``: GenAI in this process
(``answers.GenAiAnswers``), or the engine process through the channel (``remote``) when this
process is one of the front ends of ``--workers N``. So this module imports no GenAI.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from kubevino_runtime.errors import ServingError
from kubevino_runtime.generative import openai_protocol as api
from kubevino_runtime.generative.facts import Answers, Endpoint, GenerativeModel, ModelFacts
from kubevino_runtime.generative.openai_protocol import (
    MAX_RERANK_DOCUMENTS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RequestError,
    RerankRequest,
)
from kubevino_runtime.generative.sse import event_stream, finish_stream, send_event
from kubevino_runtime.protocols.http_common import Handler, read_body, shown_path

log = logging.getLogger("kubevino.generative")
PREFIXES = ("/v3", "/v3/v1", "/v1")
ENDPOINTS = ("models", "chat/completions", "completions", "embeddings", "rerank")


def is_openai_path(path: str) -> bool:
    """Whether ``path`` is OpenAI's: all of /v3 is; under /v1 only OpenAI's endpoints are (the
    rest, /v1/models/NAME included, is TF-Serving's REST API)."""
    if path == "/v3" or path.startswith("/v3/"):
        return True
    return any(path == f"/v1/{endpoint}" for endpoint in ENDPOINTS)


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals on OpenAI's paths (a method the route does not take, no route
    under /v3) in OpenAI's error object: OpenAI's clients read the message from there."""
    if not is_openai_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        message = f"{request.method} is not allowed on {shown_path(request.path)}; use {allowed}"
        return _framework_error(error, message, {"Allow": error.headers.get("Allow", allowed)})
    except web.HTTPNotFound as error:
        message = f"no OpenAI endpoint answers {request.method} {shown_path(request.path)}"
        return _framework_error(error, message, {})


def _framework_error(
    error: web.HTTPException, message: str, headers: dict[str, str]
) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return web.json_response(body, status=error.status, headers=headers)


def _json_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServingError as error:
            return web.json_response(api.error_body(error), status=error.http_status)

    return wrapped


def _gone(request: web.Request) -> bool:
    """Whether the client closed its connection (aiohttp does not cancel its handler)."""
    transport = request.transport
    return transport is None or transport.is_closing()


class OpenAiRoutes:
    def __init__(self, model: GenerativeModel, answers: Answers, max_body: int) -> None:
        self.model = model
        self.answers = answers
        self.max_body = max_body

    def routes(self) -> list[web.RouteDef]:
        table = []
        for prefix in PREFIXES:
            table += [
                web.get(f"{prefix}/models", _json_errors(self.list_models)),
                web.get(f"{prefix}/models/{{name:.+}}", _json_errors(self.retrieve_model)),
                web.post(f"{prefix}/chat/completions", _json_errors(self.chat_completions)),
                web.post(f"{prefix}/completions", _json_errors(self.completions)),
                web.post(f"{prefix}/embeddings", _json_errors(self.embeddings)),
                web.post(f"{prefix}/rerank", _json_errors(self.rerank)),
            ]
        return table

    # --- models ------------------------------------------------------------------------------

    @staticmethod
    def _model_object(facts: ModelFacts) -> dict[str, Any]:
        model: dict[str, Any] = {
            "id": facts.name,
            "object": "model",
            "created": facts.created,
            "owned_by": "OVMS",  # what Model Server's clients see
        }
        if facts.context_length is not None:
            # vLLM's name for the context length: clients that know it (LangChain, LiteLLM,
            # Open WebUI) size prompts by it; OpenAI's clients ignore fields they do not know.
            model["max_model_len"] = facts.context_length
        return model

    async def list_models(self, request: web.Request) -> web.Response:
        facts = self.model.facts()
        models = [self._model_object(facts)] if facts.ready() else []
        return web.json_response({"object": "list", "data": models})

    async def retrieve_model(self, request: web.Request) -> web.Response:
        facts = self.model.facts()
        facts.check_model(request.match_info["name"])
        return web.json_response(self._model_object(facts))

    # --- calls -------------------------------------------------------------------------------

    async def _document(self, request: web.Request) -> dict[str, Any]:
        return api.parse_json(await read_body(request, self.max_body))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        document = await self._document(request)
        chat = api.parse_request(ChatCompletionRequest, document)
        self.model.facts().check_endpoint(chat.model, Endpoint.CHAT)
        return await self._respond(request, Endpoint.CHAT, document, stream=chat.stream)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        document = await self._document(request)
        completion = api.parse_request(CompletionRequest, document)
        self.model.facts().check_endpoint(completion.model, Endpoint.COMPLETIONS)
        return await self._respond(
            request, Endpoint.COMPLETIONS, document, stream=completion.stream
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        document = await self._document(request)
        body = api.parse_request(EmbeddingRequest, document)
        self.model.facts().check_endpoint(body.model, Endpoint.EMBEDDINGS)
        return await self._respond(request, Endpoint.EMBEDDINGS, document, stream=False)

    async def rerank(self, request: web.Request) -> web.StreamResponse:
        document = await self._document(request)
        body = api.parse_request(RerankRequest, document)
        self.model.facts().check_endpoint(body.model, Endpoint.RERANK)
        if len(body.documents) > MAX_RERANK_DOCUMENTS:
            raise RequestError(
                f"documents: at most {MAX_RERANK_DOCUMENTS} documents per request", "documents"
            )
        return await self._respond(request, Endpoint.RERANK, document, stream=False)

    async def _respond(
        self, request: web.Request, endpoint: Endpoint, document: dict[str, Any], *, stream: bool
    ) -> web.StreamResponse:
        replies = self.answers.answer(endpoint, document, lambda: _gone(request))
        try:
            # A refusal before the start (a prompt too long for the context) raises here: a 4xx.
            first = await anext(replies, None)
            if not stream:
                if first is None:
                    # The client left before the answer; nobody reads this. 499 is nginx's
                    # "client closed request", for the record.
                    return web.Response(status=499)
                return web.json_response(first)
            return await self._stream(request, first, replies)
        finally:
            await replies.aclose()  # stops the generation when the client left early

    async def _stream(
        self,
        request: web.Request,
        first: dict[str, Any] | None,
        replies: AsyncGenerator[dict[str, Any], None],
    ) -> web.StreamResponse:
        response = event_stream()
        try:
            await response.prepare(request)
            if first is not None:
                await send_event(response, first)
                try:
                    async for event in replies:
                        await send_event(response, event)
                except ServingError as error:
                    # The stream has begun: the error travels as an event, as OpenAI's do.
                    await send_event(response, api.error_body(error))
            await finish_stream(response)
        except ConnectionResetError:
            # The client went away mid-answer (a chat window closed): no fault of anyone's.
            # _respond stops the generation; aiohttp finds the connection gone and closes it.
            log.debug("a streaming client went away; its generation is cancelled")
        return response
