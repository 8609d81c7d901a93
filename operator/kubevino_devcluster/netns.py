"""A network namespace made by the test, and a way to step the test process into it.

Everything of the node tier lives inside one: it has loopback and one veth pair whose ends
both stay inside, so no packet can leave for the machine's network.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class NetworkNamespace:
    name: str
    node_ip: str = "10.77.0.2"

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread (and every process it starts) inside the namespace.

        setns moves only the calling thread, which is what pytest's fixtures and tests run
        on; the original namespace comes back on exit."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(target)
            os.close(original)


@contextmanager
def network_namespace(prefix: str = "kv-e2e") -> Iterator[NetworkNamespace]:
    namespace = NetworkNamespace(f"{prefix}-{uuid.uuid4().hex[:8]}")
    _ip("netns", "add", namespace.name)
    try:
        inside = ("-n", namespace.name)
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "add", "kvnode0", "type", "veth", "peer", "name", "kvnode1")
        _ip(*inside, "addr", "add", f"{namespace.node_ip}/24", "dev", "kvnode0")
        _ip(*inside, "link", "set", "kvnode0", "up")
        _ip(*inside, "link", "set", "kvnode1", "up")
        # A default route for components that look for one; it ends at our own veth peer.
        _ip(*inside, "route", "add", "default", "dev", "kvnode0")
        yield namespace
    finally:
        _ip("netns", "delete", namespace.name)
