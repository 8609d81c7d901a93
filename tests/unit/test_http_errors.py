"""Errors the HTTP layer finds are answered like the APIs' own: a 4xx with the JSON error
``{"error": "..."}`` naming what is wrong (aiohttp would answer text, or a 500 for a body that
ends early)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, ContentLengthError
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer, make_mocked_request
from aiohttp.web_protocol import RequestPayloadError

from kubevino_runtime.errors import ErrorKind, ServingError, invalid
from kubevino_runtime.protocols.http_common import handled, json_errors, read_body


async def _echo_length(request: web.Request) -> web.Response:
    body = await read_body(request, max_body=1024)
    return web.json_response({"length": len(body)})


async def _refuse(request: web.Request) -> web.Response:
    raise invalid("this handler refuses everything")


def _app() -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app.add_routes([web.post("/echo", handled(_echo_length)), web.get("/refuse", handled(_refuse))])
    return app


async def _exchange(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``raw`` to a server running the app; its status, headers and JSON body."""
    async with TestServer(_app()) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def _answer(method: str, path: str) -> tuple[int, dict[str, str], Any]:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return asyncio.run(_exchange(request.encode()))


def test_a_path_no_api_serves_is_a_json_404() -> None:
    status, headers, body = _answer("GET", "/v2/nope")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert body == {"error": "no API answers GET /v2/nope"}


def test_a_method_the_route_does_not_take_is_a_json_405_listing_the_allowed() -> None:
    status, headers, body = _answer("DELETE", "/refuse")
    assert status == 405 and "GET" in headers["Allow"]
    assert body["error"].startswith("DELETE is not allowed on /refuse; use GET")


def test_the_apis_own_errors_pass_through_unchanged() -> None:
    status, _, body = _answer("GET", "/refuse")
    assert (status, body) == (400, {"error": "this handler refuses everything"})


async def _read_failing_body(failure: BaseException) -> str:
    """read_body on a body whose stream fails with ``failure``."""
    protocol = mock.Mock(_reading_paused=False)
    payload = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(b"{" * 10)
    payload.set_exception(failure)
    request = make_mocked_request("POST", "/echo", payload=payload)
    with pytest.raises(ServingError) as caught:
        await read_body(request, max_body=1024)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


@pytest.mark.parametrize(
    "refusal",
    [
        ContentLengthError("Not enough data to satisfy content length header."),
        ContentEncodingError("Can not decode content-encoding: gzip"),
    ],
)
def test_a_body_the_http_parser_refused_is_a_client_error_naming_why(
    refusal: ContentLengthError | ContentEncodingError,
) -> None:
    failure = RequestPayloadError(str(refusal))  # as aiohttp's parser wraps and chains it
    failure.__cause__ = refusal
    message = asyncio.run(_read_failing_body(failure))
    assert message == f"request body could not be read: {refusal.message}"


def test_a_client_gone_mid_body_is_answered_as_a_client_error() -> None:
    message = asyncio.run(_read_failing_body(ConnectionResetError("Connection lost")))
    assert message == "request body could not be read: the client closed the connection"
