"""HTTP details shared by the REST front ends."""

from __future__ import annotations

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
