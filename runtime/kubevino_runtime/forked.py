"""Front ends forked from one lean launcher, adopted by the engine process.

A fresh interpreter per front end pays for its imports (aiohttp, grpc, protobuf, numpy,
prometheus_client and the protocols: some 30 MiB of heap each) N times. The launcher imports
them once, freezes them out of the garbage collector's reach (``gc.freeze``: a collection would
otherwise write to every object's header and copy the page) and forks the front ends, which
share those pages copy-on-write; then it exits. The engine process is a child subreaper, so the
front ends become its children: it watches each through a pidfd and reaps it as it would a
process it had started itself.

The launcher is itself forked from the engine process at its start (``entry``), after the
front end's imports and before OpenVINO's: so the interpreter's and those libraries' heap is
held once for the whole pod, engine included, instead of once in the engine process and once
more in the launcher's copy. It waits on a control socket until the engine process sends it the
front ends' channels (``Launcher.launch``), or for that socket to close. Where the process did
not start through ``entry`` (``kubevino_runtime.server.main`` called directly), the engine
process starts the launcher as a fresh interpreter instead (``Launcher.start``), which imports
the same modules itself.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence

_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
LAUNCHER_CONTROL_FD_ENV = "KUBEVINO_FRONT_END_LAUNCHER_FD"
MAX_LAUNCH_MESSAGE = 1024 * 1024  # the environment, as JSON


def become_subreaper() -> None:
    """Orphaned descendants (the launcher's front ends) become this process's children."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def name_process(name: str) -> None:
    """The name ps and top show (15 bytes at most): a forked front end keeps the engine
    process's command line, so this tells them apart."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _control_pair() -> tuple[socket.socket, socket.socket]:
    """The engine process's end and the launcher's end of a control socket."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


class Launcher:
    """The front ends' launcher, as the engine process sees it: a child waiting on ``control``
    for the channels (forked at start or started as a fresh interpreter)."""

    def __init__(
        self, pid: int, control: socket.socket, wait: Callable[[], Awaitable[int]]
    ) -> None:
        self.pid = pid
        self.control = control
        self._wait = wait

    @classmethod
    def fork(cls, args: argparse.Namespace) -> Launcher:
        """Fork the launcher now: before this process imports OpenVINO, and before it starts
        threads of its own (the child has only the forking thread)."""
        from kubevino_runtime import frontend_main  # imports every module a front end needs

        frontend_main.import_front_end_modules(args)
        engine_end, launcher_end = _control_pair()
        gc.collect()
        # The engine process keeps the shared objects too; frozen, its own collections leave
        # their pages alone as well.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                engine_end.close()
                status = frontend_main.run_launcher(args, launcher_end)
            except BaseException:
                traceback.print_exc()  # the engine process reports the launcher's status
                sys.stderr.flush()
            finally:
                os._exit(status)  # never back into the engine process's code
        launcher_end.close()

        async def wait() -> int:
            return await AdoptedProcess(pid).wait()

        return cls(pid, engine_end, wait)

    @classmethod
    async def start(cls, argv: Sequence[str]) -> Launcher:
        """The launcher as a fresh interpreter running ``frontend_main``."""
        engine_end, launcher_end = _control_pair()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kubevino_runtime.frontend_main",
            *argv,
            env={**os.environ, LAUNCHER_CONTROL_FD_ENV: str(launcher_end.fileno())},
            pass_fds=(launcher_end.fileno(),),
        )
        launcher_end.close()
        return cls(process.pid, engine_end, process.wait)

    async def launch(self, channels: Sequence[socket.socket]) -> list[int]:
        """Hand over this process's environment (it changed since the fork: the metrics
        directory) and one channel end per front end; the launcher forks them, answers their
        pids and exits."""
        message = json.dumps(dict(os.environ)).encode()
        try:
            socket.send_fds(self.control, [message], [channel.fileno() for channel in channels])
        except OSError:  # the launcher has ended: its status says why
            said = b""
        else:
            self.control.setblocking(False)
            said = await asyncio.get_running_loop().sock_recv(self.control, 4096)
        self.control.close()
        status = await self._wait()
        pids = [int(pid) for pid in said.split()]
        if status != 0 or len(pids) != len(channels):
            raise RuntimeError(f"the front-end launcher failed (status {status})")
        return pids

    def close(self) -> None:
        """Where no front end is wanted after all (the server stops before it starts them):
        the launcher sees its control socket close and exits; reap it."""
        if self.control.fileno() == -1:
            return
        self.control.close()
        os.waitpid(self.pid, 0)


def receive_launch(control: socket.socket, count: int) -> tuple[dict[str, str], list[int]] | None:
    """The launcher's side of ``Launcher.launch``: the engine process's environment and the
    channels' fds, or None where the engine process closed the socket instead (it stopped, or
    serves without front ends). An interrupt while waiting ends the launcher quietly, as the
    engine process's own stops it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        message, fds, _, _ = socket.recv_fds(control, MAX_LAUNCH_MESSAGE, count)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not message:
        return None
    return json.loads(message), fds


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
