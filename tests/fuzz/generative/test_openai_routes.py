"""Every route of the three generative servers, fuzzed at the HTTP level: the OpenAI routes
under each prefix, the model retrieved by hostile names, KServe health and /metrics — with
wrong methods, odd content types and encodings, empty, junk and damaged bodies, bodies cut
short in transit, and framing no HTTP parser accepts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.generative.openai_requests import PREFIXES
from tests.fuzz.generative.served import ServedModel
from tests.fuzz.properties import (
    ErrorReader,
    HttpWellFormed,
    check_http,
    openai_error,
    plain_error,
    strict_json,
)
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.strategies import (
    HTTP_METHODS,
    Framing,
    content_framing,
    damaged,
    encode_json,
    hostile_names,
    json_values,
    path_segment,
)

pytestmark = pytest.mark.fuzz
OPENAI_ENDPOINTS = ("models", "chat/completions", "completions", "embeddings", "rerank")


def _json(answer: RawAnswer) -> None:
    assert answer.content_type == "application/json", answer.content_type
    assert isinstance(strict_json(answer.body), dict), answer.body[:200]


def _models(answer: RawAnswer) -> None:
    _json(answer)
    document = strict_json(answer.body)
    if document.get("object") == "list":
        assert all(model["object"] == "model" for model in document["data"]), document
    else:
        assert document["object"] == "model", document


def _any_body(answer: RawAnswer) -> None:
    """A generation, embeddings or ranking of a body that happened to be valid: what each
    must hold is the endpoint's own fuzz test's business."""
    assert answer.body, "an empty answer"


def _preflight(answer: RawAnswer) -> None:
    assert "access-control-allow-methods" in answer.headers, answer.headers


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {name} filled in
    well_formed: HttpWellFormed


ROUTES = (
    *(Route("GET", f"{prefix}/models", _models) for prefix in PREFIXES),
    # /v1/models/NAME is TF-Serving's model status, as in Model Server.
    *(Route("GET", f"{prefix}/models/{{name}}", _models) for prefix in ("/v3", "/v3/v1")),
    *(
        Route("POST", f"{prefix}/{endpoint}", _any_body)
        for prefix in PREFIXES
        for endpoint in OPENAI_ENDPOINTS[1:]
    ),
    Route("GET", "/v2/health/live", _json),
    Route("GET", "/v2/health/ready", _json),
    Route("GET", "/metrics", _any_body),
)


def error_reader_for(request: RawRequest) -> ErrorReader:
    """OpenAI's paths answer OpenAI's error object; KServe's, TF-Serving's and the server's
    own answer theirs (so does CONNECT, whose target the parser reads as host:port)."""
    if request.method == "CONNECT":
        return plain_error
    path = request.target.split("?")[0].split("#")[0]
    if path == "/v3" or path.startswith("/v3/"):
        return openai_error
    if path in {f"/v1/{endpoint}" for endpoint in OPENAI_ENDPOINTS}:
        return openai_error
    if path.startswith("/v1/models/"):
        return either_error  # TF-Serving's model status, or OpenAI's model a name it cannot hold
    return plain_error


def either_error(document: object) -> str | None:
    return openai_error(document) or plain_error(document)


@st.composite
def route_requests(draw: st.DrawFn, model_name: str) -> tuple[RawRequest, HttpWellFormed]:
    route = draw(st.sampled_from(ROUTES))
    name = draw(st.sampled_from([model_name]) if draw(st.booleans()) else hostile_names())
    path = route.path.replace("{name}", draw(path_segment(name)))
    if draw(st.integers(0, 6)) == 0:
        path += draw(st.sampled_from(["/", "//", "/extra", "?x=1", "?stream=true", "#f", "%"]))
    method = route.method if draw(st.integers(0, 2)) else draw(HTTP_METHODS)
    body = b""
    if method != "GET" or draw(st.integers(0, 5)) == 0:
        body = draw(
            st.one_of(
                st.just(b""),
                st.binary(max_size=64),
                json_values().map(encode_json),
                st.just(b'{"model": "m", "messages": [{"role": "user"}]}').flatmap(damaged),
            )
        )
    framing = Framing(body, (), False, True)
    if draw(st.booleans()):
        framing = draw(content_framing(body))
    request = RawRequest(
        method, path, framing.body, framing.headers, breaks_http=framing.breaks_http
    )
    return request, _preflight if method == "OPTIONS" else route.well_formed


SERVERS = ("llm", "embedder", "reranker")


@fuzz(share=0.02)
@given(data=st.data())
def test_every_route_answers_wrong_methods_types_and_bodies_with_a_client_error(
    data: st.DataObject, llm: ServedModel, embedder: ServedModel, reranker: ServedModel
) -> None:
    served = {"llm": llm, "embedder": embedder, "reranker": reranker}[
        data.draw(st.sampled_from(SERVERS), label="server")
    ]
    request, well_formed = data.draw(route_requests(served.name), label="request")
    answer = send(served.port, request)
    check_http(request, answer, well_formed, error_reader=error_reader_for(request))
    served.sentinel.after_case()


@st.composite
def framing_requests(draw: st.DrawFn) -> RawRequest:
    """Content-Length that lies, bodies cut off in transit, chunked encodings that are not."""
    endpoint = draw(st.sampled_from(OPENAI_ENDPOINTS[1:]))
    path = f"{draw(st.sampled_from(PREFIXES))}/{endpoint}"
    body = b'{"model": "m", "input": "x", "prompt": "x", "query": "q", "documents": ["d"]}'
    how = draw(st.sampled_from(["cut in transit", "announced short", "bad header", "chunked"]))
    if how == "cut in transit":
        return RawRequest("POST", path, body, cut_after=draw(st.integers(0, len(body) - 1)))
    if how == "announced short":
        short = draw(st.integers(0, len(body) - 1))
        return RawRequest("POST", path, body, announced_length=short, breaks_http=True)
    if how == "bad header":
        header = draw(st.sampled_from([("Bad Name", "x"), ("X", "a\x00b"), ("", "v")]))
        return RawRequest("POST", path, body, (header,), breaks_http=True)
    chunks = draw(st.sampled_from(["zz\r\nabc\r\n0\r\n\r\n", "5\r\nab", "-1\r\n\r\n"]))
    return RawRequest("POST", path, chunks.encode(), chunked=True, breaks_http=True)


@fuzz(share=0.006)
@given(data=st.data())
def test_broken_http_framing_gets_a_client_error_or_a_closed_connection(
    data: st.DataObject, llm: ServedModel, embedder: ServedModel, reranker: ServedModel
) -> None:
    served = {"llm": llm, "embedder": embedder, "reranker": reranker}[
        data.draw(st.sampled_from(SERVERS), label="server")
    ]
    request = data.draw(framing_requests(), label="request")
    answer = send(served.port, request)
    check_http(request, answer, error_reader=error_reader_for(request))
    served.sentinel.after_case()
