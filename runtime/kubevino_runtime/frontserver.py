"""A front-end process of ``--workers N``: the protocols on the shared ports, the engines in the
engine process (``frontend.EngineLink``); with ``--task``, OpenAI's endpoints too, answered by
the engine process's pipeline (``generative.remote``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.frontend import EngineLink
from kubevino_runtime.listeners import application, listen, stop_on_signals
from kubevino_runtime.metrics import Metrics
from kubevino_runtime.startup import HeapTrimmer, heap_trim_minutes, release_free_heap
from kubevino_runtime.workers import FrontEndRole

if TYPE_CHECKING:
    from kubevino_runtime.generative.remote import RemoteGenerative

log = logging.getLogger("kubevino.server")


class _Pages:
    """/metrics and /kubevino/diagnostics of a front end: what the engine process reports."""

    def __init__(self, link: EngineLink, plane: DataPlane) -> None:
        self.link = link
        self.plane = plane

    async def metrics(self, request: web.Request) -> web.Response:
        families = self.link.catalogue.get("families")
        if families is None:
            raise web.HTTPNotFound()  # as Model Server without metrics enabled
        body = self.plane.metrics.exposition(frozenset(families))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def diagnostics(self, request: web.Request) -> web.Response:
        if not self.link.received.is_set():
            raise web.HTTPServiceUnavailable(text="waiting for the engine process")
        report = dict(self.link.catalogue["diagnostics"])
        report["answeredBy"] = os.getpid()
        return web.json_response(report)


async def serve_front_end(args: argparse.Namespace, role: FrontEndRole) -> int:
    """Serve until SIGTERM (then drain this front end's requests: 0) or until the engine
    process is gone (1: the pod stops whole)."""
    stop, _ = stop_on_signals()
    engine_lost: list[bool] = []

    def lost() -> None:
        if not stop.is_set():
            log.error("the engine process is gone: stopping")
            engine_lost.append(True)
        stop.set()

    link = EngineLink(socket.socket(fileno=role.channel_fd), lost)
    generative, routes, middlewares = _openai(args, link)
    plane = DataPlane(link.registry, Metrics(), generative=generative, engines_here=False)
    pages = _Pages(link, plane)
    app = application(args, plane, pages.metrics, pages.diagnostics, routes, middlewares)
    runner, grpc_server = await listen(args, plane, app, reuse_port=True)
    link.hello()
    log.info("front end %d serving (pid %d)", role.index, os.getpid())
    # Request bodies freed after a burst stay in this process's heap until trimmed, as in the
    # engine process (the same interval).
    trimmer = HeapTrimmer.from_libc()
    minutes = heap_trim_minutes(args, trimmer)
    trimming = None
    if trimmer is not None and minutes:
        trimming = asyncio.get_running_loop().create_task(release_free_heap(minutes, trimmer))
    await stop.wait()
    if trimming is not None:
        trimming.cancel()
    link.registry.shutting_down = True
    grace = args.shutdown_grace_seconds
    await asyncio.gather(grpc_server.stop(grace), runner.cleanup())
    if not engine_lost:
        try:
            await asyncio.wait_for(link.registry.drain(), timeout=grace)
            if generative is not None:
                await asyncio.wait_for(generative.drained(), timeout=grace)
        except TimeoutError:
            log.warning("requests still running after %.0f s; exiting anyway", grace)
    link.close()
    log.info("stopped")
    return 1 if engine_lost else 0


def _openai(
    args: argparse.Namespace, link: EngineLink
) -> tuple[RemoteGenerative | None, list[web.RouteDef], list[Middleware]]:
    """The generative model of ``--task`` and OpenAI's routes for it; nothing without one."""
    if not args.task:
        return None, [], []
    # Imported only where a generative model is served (the launcher imports them before it
    # forks: frontend_main), so a tensor model's front ends stay as lean as they were.
    from kubevino_runtime.generative.openai_http import OpenAiRoutes, openai_errors
    from kubevino_runtime.generative.remote import RemoteGenerative
    from kubevino_runtime.generative.settings import Task

    model = RemoteGenerative(link, args.model_name, Task(args.task))
    routes = OpenAiRoutes(model, model, args.max_request_bytes).routes()
    return model, routes, [openai_errors]
