"""Server-sent events as OpenAI streams them: ``data: {json}`` events, then ``data: [DONE]``."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

DONE = b"data: [DONE]\n\n"


def event_stream() -> web.StreamResponse:
    """A response for events, to be prepared (its headers sent) before the first one."""
    return web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # proxies must pass each event on at once
        }
    )


async def send_event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")


async def finish_stream(response: web.StreamResponse) -> None:
    await response.write(DONE)
    await response.write_eof()
