"""HTTP details shared by the REST front ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from kubevino_runtime.errors import ErrorKind, ServingError, invalid


async def read_body(request: web.Request, max_body: int) -> bytes:
    """The whole request body, or a 413-kind error when it is over ``max_body`` bytes."""
    too_large = ServingError(
        ErrorKind.TOO_LARGE, f"request body is larger than the limit of {max_body} bytes"
    )
    if request.content_length is not None and request.content_length > max_body:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except RequestPayloadError as error:
        # aiohttp's parser refused the body itself: it ended before its Content-Length or
        # chunks said, or it is not in its Content-Encoding. Its own error says which.
        cause = error.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else str(error)
        raise invalid(f"request body could not be read: {reason}") from None
    except ConnectionResetError:
        # The client went away mid-body; nobody may read this answer, but it is no fault.
        raise invalid("request body could not be read: the client closed the connection") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own client errors (no route for the path, a method the route does not take)
    in the JSON both REST APIs answer errors with, instead of aiohttp's plain text."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed as error:
        allowed = ", ".join(sorted(error.allowed_methods))
        message = f"{request.method} is not allowed on {shown_path(request.path)}; use {allowed}"
        return _json_error(error, message)
    except web.HTTPNotFound as error:
        return _json_error(error, f"no API answers {request.method} {shown_path(request.path)}")


def shown_path(path: str) -> str:
    """A path for an error message, cut short if a client sent a very long one."""
    return path if len(path) <= 200 else path[:200] + "…"


def _json_error(error: web.HTTPException, message: str) -> web.Response:
    headers = {name: value for name, value in error.headers.items() if name == "Allow"}
    return web.json_response({"error": message}, status=error.status, headers=headers)


def handled(handler: Handler) -> Handler:
    """Turn a ServingError into the JSON error both REST APIs use: {"error": message}."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServingError as error:
            return web.json_response({"error": error.message}, status=error.http_status)

    return wrapped
