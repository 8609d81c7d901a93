"""A TCP forwarder from the machine's loopback into the cluster's network namespace.

The API server listens inside the namespace, where a user's shell cannot reach it. The
forwarder's listening socket is made in the namespace the process started in (the host's);
its thread then steps into the cluster's namespace, so every connection it opens onward is
made there. The API server's certificate names 127.0.0.1, so a kubeconfig pointing at the
forwarder's port verifies as it would inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from kubevino_devcluster.netns import NetworkNamespace

_CHUNK = 1 << 16


def loopback_listener() -> socket.socket:
    """A listening socket on 127.0.0.1 of the caller's network namespace (any free port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


class Forwarder:
    """Accepts on ``listener``; connects each client to 127.0.0.1:``port`` in ``namespace``."""

    def __init__(self, listener: socket.socket, namespace: NetworkNamespace, port: int) -> None:
        self._listener = listener
        self._namespace = namespace
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-forwarder", daemon=True)
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)

    def stop(self) -> None:
        """Closes the listener and every forwarded connection (port-forwards end here)."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        self._listener.close()

    def _run(self) -> None:
        with self._namespace.entered():
            asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._forward, sock=self._listener)
        self._started.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for writer in list(self._connections):
                writer.close()

    async def _forward(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            server_in, server = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            client.close()
            return
        self._connections.update((client, server))
        try:
            await asyncio.gather(_pump(client_in, server), _pump(server_in, client))
        finally:
            for writer in (client, server):
                self._connections.discard(writer)
                writer.close()


async def _pump(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    """Copies until end of stream, then half-closes the other side (TLS close_notify and
    HTTP/2 GOAWAY need the reverse direction to stay open)."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(_CHUNK):
            target.write(data)
            await target.drain()
        if target.can_write_eof():
            target.write_eof()
