"""Every REST route of both HTTP APIs (KServe v2, TF-Serving) and the server's own, fuzzed at
the HTTP level: hostile model names and versions (non-numeric, huge, negative, unicode,
percent-encoded, very long), wrong methods, odd content types, empty and junk bodies, bodies
cut short in transit, and framing no HTTP parser accepts."""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.properties import HttpWellFormed, check_http, strict_json
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.sentinel import Sentinel
from tests.fuzz.strategies import (
    HTTP_METHODS,
    KNOWN_NAMES,
    Framing,
    content_framing,
    damaged,
    encode_json,
    hostile_names,
    hostile_versions,
    json_values,
    path_segment,
)
from tests.runtime.serving import RunningServer

pytestmark = pytest.mark.fuzz


def _json_object(*keys: str) -> HttpWellFormed:
    def check(answer: RawAnswer) -> None:
        assert answer.content_type == "application/json", answer.content_type
        document = strict_json(answer.body)
        assert isinstance(document, dict), f"{document!r} is not an object"
        missing = [key for key in keys if key not in document]
        assert not missing, f"answer lacks {missing}: {document!r}"
        # every fuzz model is loaded: a 2xx readiness answer can only say ready
        assert document.get("ready", True) is True, f"2xx but not ready: {document!r}"

    return check


def _preflight(answer: RawAnswer) -> None:
    """OPTIONS on any path is a browser's CORS preflight, answered as Model Server does: an
    empty 2xx saying which methods and headers are allowed."""
    assert "access-control-allow-methods" in answer.headers, answer.headers
    assert "access-control-allow-headers" in answer.headers, answer.headers


def _text(answer: RawAnswer) -> None:
    assert answer.body, "an empty answer"


def _inference(answer: RawAnswer) -> None:
    assert answer.body, "an empty inference answer"


@dataclass(frozen=True)
class RouteTemplate:
    method: str
    path: str  # {name} and {version} are filled in
    well_formed: HttpWellFormed


ROUTES = (
    RouteTemplate("GET", "/v2", _json_object("name", "version", "extensions")),
    RouteTemplate("GET", "/v2/health/live", _json_object("live")),
    RouteTemplate("GET", "/v2/health/ready", _json_object("ready")),
    RouteTemplate("GET", "/v2/models/{name}", _json_object("name", "inputs", "outputs")),
    RouteTemplate(
        "GET", "/v2/models/{name}/versions/{version}", _json_object("name", "inputs", "outputs")
    ),
    RouteTemplate("GET", "/v2/models/{name}/ready", _json_object("name", "ready")),
    RouteTemplate("GET", "/v2/models/{name}/versions/{version}/ready", _json_object("ready")),
    RouteTemplate("POST", "/v2/models/{name}/infer", _inference),
    RouteTemplate("POST", "/v2/models/{name}/versions/{version}/infer", _inference),
    RouteTemplate("GET", "/v1/models/{name}", _json_object("model_version_status")),
    RouteTemplate(
        "GET", "/v1/models/{name}/versions/{version}", _json_object("model_version_status")
    ),
    RouteTemplate("GET", "/v1/models/{name}/metadata", _json_object("modelSpec", "metadata")),
    RouteTemplate(
        "GET",
        "/v1/models/{name}/versions/{version}/metadata",
        _json_object("modelSpec", "metadata"),
    ),
    RouteTemplate("POST", "/v1/models/{name}:predict", _inference),
    RouteTemplate("POST", "/v1/models/{name}/versions/{version}:predict", _inference),
    RouteTemplate("GET", "/metrics", _text),
    RouteTemplate("GET", "/kubevino/diagnostics", _json_object("devices", "models")),
)


@st.composite
def route_requests(draw: st.DrawFn) -> tuple[RawRequest, HttpWellFormed]:
    route = draw(st.sampled_from(ROUTES))
    # Known names and versions often, so a hostile version meets a model that exists.
    known_name, known_version = draw(st.booleans()), draw(st.integers(0, 2)) == 0
    name = draw(st.sampled_from(KNOWN_NAMES) if known_name else hostile_names())
    version = draw(st.sampled_from(["1", "2"]) if known_version else hostile_versions())
    path = route.path.replace("{name}", draw(path_segment(name)))
    path = path.replace("{version}", draw(path_segment(version)))
    if draw(st.integers(0, 6)) == 0:
        path += draw(st.sampled_from(["/", "//", "/extra", "?x=1", "?version=1", "#f", "%"]))
    method = route.method if draw(st.integers(0, 3)) else draw(HTTP_METHODS)
    body = b""
    if method != "GET" or draw(st.integers(0, 5)) == 0:
        body = draw(
            st.one_of(
                st.just(b""),
                st.binary(max_size=64),
                json_values().map(encode_json),
                st.just(b'{"inputs": []}').flatmap(damaged),
            )
        )
    framing = Framing(body, (), False, True)
    if draw(st.booleans()):
        framing = draw(content_framing(body))
    request = RawRequest(
        method,
        path,
        framing.body,
        framing.headers,
        breaks_http=framing.breaks_http,
    )
    return request, _preflight if method == "OPTIONS" else route.well_formed


@fuzz(share=0.11)
@given(case=route_requests())
def test_every_route_answers_hostile_names_versions_and_methods_with_a_client_error(
    case: tuple[RawRequest, HttpWellFormed], server: RunningServer, sentinel: Sentinel
) -> None:
    request, well_formed = case
    check_http(request, send(server.rest_port, request), well_formed)
    sentinel.after_case()


MODEL_ROUTES = [route for route in ROUTES if route.method == "GET" and "{name}" in route.path]


@st.composite
def model_route_requests(draw: st.DrawFn) -> tuple[RawRequest, HttpWellFormed]:
    """A metadata, readiness or status route of a model that exists, asked for a hostile
    version (or, by name, a hostile model): what clients get most often wrong."""
    route = draw(st.sampled_from(MODEL_ROUTES))
    if "{version}" in route.path and draw(st.integers(0, 3)):
        name, version = draw(st.sampled_from(KNOWN_NAMES)), draw(hostile_versions())
    else:
        name, version = draw(hostile_names()), draw(st.sampled_from(["1", "2"]))
    path = route.path.replace("{name}", draw(path_segment(name)))
    path = path.replace("{version}", draw(path_segment(version)))
    return RawRequest("GET", path), route.well_formed


@fuzz(share=0.06)
@given(case=model_route_requests())
def test_model_routes_answer_hostile_versions_and_names_with_a_client_error(
    case: tuple[RawRequest, HttpWellFormed], server: RunningServer, sentinel: Sentinel
) -> None:
    request, well_formed = case
    check_http(request, send(server.rest_port, request), well_formed)
    sentinel.after_case()


POST_ROUTES = [route for route in ROUTES if route.method == "POST"]


@functools.cache
def gzip_bomb(inflated_mib: int) -> bytes:
    return gzip.compress(b"[" + b"0," * (inflated_mib * 512 * 1024) + b"0]")


@st.composite
def framing_requests(draw: st.DrawFn) -> RawRequest:
    """Content-Length that lies, bodies cut off in transit, request lines and headers that are
    not HTTP."""
    route = draw(st.sampled_from(POST_ROUTES))
    path = route.path.replace("{name}", "affine").replace("{version}", "1")
    body = (
        b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1,2,3,4,5,6]}]}'
    )
    how = draw(
        st.sampled_from(
            [
                "cut in transit",
                "announced short",
                "gzip bomb",
                "announced garbage",
                "bad request line",
                "bad header",
                "huge header",
                "chunked garbage",
            ]
        )
    )
    if how == "cut in transit":
        return RawRequest("POST", path, body, cut_after=draw(st.integers(0, len(body) - 1)))
    if how == "announced short":
        # The bytes after the announced length are a second request, which is not HTTP.
        short = draw(st.integers(0, len(body) - 1))
        return RawRequest("POST", path, body, announced_length=short, breaks_http=True)
    if how == "gzip bomb":
        # A few KiB that inflate past the body limit: refused as too large, memory bounded.
        bomb = gzip_bomb(draw(st.sampled_from([2, 16, 64])))
        return RawRequest("POST", path, bomb, (("Content-Encoding", "gzip"),))
    if how == "announced garbage":
        announced = draw(st.sampled_from(["-1", "x", "1e3", str(2**64), "9" * 100, "", "+5"]))
        return RawRequest("POST", path, body, announced_length=announced, breaks_http=True)
    if how == "bad request line":
        method = draw(st.sampled_from(["G ET", "", "GET\x00", "é", "POST /x"]))
        return RawRequest(method, path, body, breaks_http=True)
    if how == "bad header":
        header = draw(st.sampled_from([("Bad Name", "x"), ("X", "a\x00b"), ("", "v")]))
        return RawRequest("POST", path, body, (header,), breaks_http=True)
    if how == "huge header":
        size = draw(st.integers(8000, 20000))
        return RawRequest("POST", path, body, (("X-Big", "b" * size),), breaks_http=True)
    chunks = draw(st.sampled_from(["zz\r\nabc\r\n0\r\n\r\n", "5\r\nab", "-1\r\n\r\n"]))
    return RawRequest(
        "POST",
        path,
        chunks.encode(),
        chunked=True,
        breaks_http=True,
    )


@fuzz(share=0.05)
@given(request=framing_requests())
def test_broken_http_framing_gets_a_client_error_or_a_closed_connection(
    request: RawRequest, server: RunningServer, sentinel: Sentinel
) -> None:
    check_http(request, send(server.rest_port, request))
    sentinel.after_case()
