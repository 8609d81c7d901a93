"""Loopback ports for servers the tests start.

Ports come from below the kernel's ephemeral range, so an outgoing connection made by
any process meanwhile cannot take a port between choosing it and the server binding it;
every port of one call is held open until all are chosen, so they are distinct.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

_FALLBACK_EPHEMERAL_START = 32768
_LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def free_ports(count: int) -> list[int]:
    top = _ephemeral_start() - 1
    chosen: list[int] = []
    with ExitStack() as held:
        while len(chosen) < count:
            port = random.randint(_LOWEST, top)
            if port in chosen:
                continue
            sock = held.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen.append(port)
    return chosen


def free_port() -> int:
    return free_ports(1)[0]
