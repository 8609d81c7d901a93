"""The ports a serving process listens on: the REST application (KServe v2, TF Serving, the
pages, CORS) and the gRPC server, and the signals that stop them. Shared by the one-process
server and the front ends, so it imports no OpenVINO (docs/runtime-architecture.md)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.protocols import kserve_grpc, tfs_grpc
from kubevino_runtime.protocols.http_common import json_errors
from kubevino_runtime.protocols.kserve_rest import KServeRest
from kubevino_runtime.protocols.tfs_rest import TfServingRest
from kubevino_runtime.startup import bind_addresses, grpc_channel_arguments

DIAGNOSTICS_PATH = "/kubevino/diagnostics"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cors(args: argparse.Namespace) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Model Server's CORS headers, on every REST response."""
    headers = {
        "Access-Control-Allow-Origin": args.allowed_origins,
        "Access-Control-Allow-Methods": args.allowed_methods,
        "Access-Control-Allow-Headers": args.allowed_headers,
    }
    headers = {name: value for name, value in headers.items() if value}
    if args.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = "true"

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    return add_headers


async def _preflight(request: web.Request) -> web.Response:
    """Model Server answers OPTIONS on any path (a browser's CORS preflight)."""
    return web.Response()


def _grpc_target(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def application(
    args: argparse.Namespace,
    plane: DataPlane,
    metrics: Handler,
    diagnostics: Handler,
    extra_routes: Sequence[web.AbstractRouteDef] = (),
    extra_middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """``extra_routes``: OpenAI's, where a generative model is served; the middlewares listed
    later answer first (OpenAI's paths get OpenAI's error object)."""
    app = web.Application(
        client_max_size=args.max_request_bytes, middlewares=[json_errors, *extra_middlewares]
    )
    app.on_response_prepare.append(_cors(args))
    app.add_routes(KServeRest(plane, args.max_request_bytes).routes())
    app.add_routes(TfServingRest(plane, args.max_request_bytes).routes())
    app.add_routes(extra_routes)
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get(DIAGNOSTICS_PATH, diagnostics),
            web.route("OPTIONS", "/{path:.*}", _preflight),
        ]
    )
    return app


async def listen(
    args: argparse.Namespace, plane: DataPlane, app: web.Application, *, reuse_port: bool
) -> tuple[web.AppRunner, grpc.aio.Server]:
    """Serve REST and gRPC on the flags' ports (shared with other processes: ``reuse_port``)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=args.shutdown_grace_seconds)
    await runner.setup()
    if args.rest_port:
        for address in bind_addresses(args.rest_bind_address):
            await web.TCPSite(runner, address, args.rest_port, reuse_port=reuse_port).start()
    options: dict[str, int | str] = {
        "grpc.max_receive_message_length": args.max_request_bytes,
        "grpc.max_send_message_length": args.max_request_bytes,
        "grpc.so_reuseport": int(reuse_port),
    }
    if args.grpc_channel_arguments:
        options.update(grpc_channel_arguments(args.grpc_channel_arguments))
    grpc_server = grpc.aio.server(options=list(options.items()))
    kserve_grpc.add_to_server(plane, grpc_server)
    tfs_grpc.add_to_server(plane, grpc_server)
    if args.port:
        for address in bind_addresses(args.grpc_bind_address):
            grpc_server.add_insecure_port(_grpc_target(address, args.port))
        await grpc_server.start()
    return runner, grpc_server


def stop_on_signals() -> tuple[asyncio.Event, list[int]]:
    """An event SIGTERM and SIGINT set, and the signals received."""
    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):

        def note(signum: int = signum) -> None:
            received.append(signum)
            stop.set()

        loop.add_signal_handler(signum, note)
    return stop, received
