"""Front ends forked from one lean launcher, adopted by the engine process.

A fresh interpreter per front end pays for its imports (aiohttp, grpc, protobuf, numpy,
prometheus_client and the protocols: some 30 MiB of heap each) N times. The launcher
(``frontend_main`` with several channels) imports them once, freezes them out of the garbage
collector's reach (``gc.freeze``: a collection would otherwise write to every object's header
and copy the page) and forks the front ends, which share those pages copy-on-write; then it
exits. The engine process is a child subreaper, so the front ends become its children: it
watches each through a pidfd and reaps it as it would a process it had started itself.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (the launcher's front ends) become this process's children."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class AdoptedProcess:
    """A child this process did not start (its parent, the launcher, has exited), with the
    part of ``asyncio.subprocess.Process`` the supervision uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[int] = self._loop.create_future()
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        # Readable once the process has ended (a zombie until reaped here).
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        self._ended.set_result(self.returncode)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self._pidfd, signum)  # never a reused pid

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)
