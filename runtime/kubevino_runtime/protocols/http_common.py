"""HTTP details shared by the REST front ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from kubevino_runtime.errors import ErrorKind, ServingError


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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handled(handler: Handler) -> Handler:
    """Turn a ServingError into the JSON error both REST APIs use: {"error": message}."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServingError as error:
            return web.json_response({"error": error.message}, status=error.http_status)

    return wrapped
