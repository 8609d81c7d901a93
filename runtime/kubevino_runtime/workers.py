"""Several processes behind the same ports (``--workers N``): front ends and their supervision.

One process's event loop tops out near a thousand requests a second (bench/runtime_throughput.py
on 16 cores: the loop thread busy in gRPC's per-call work), well below what OpenVINO computes on
many cores with a small model. So with ``--workers N`` the process the container started becomes
the engine process: it compiles every model version once and runs its infer requests, and it
starts N front-end processes that speak the protocols, share the gRPC and REST ports through
SO_REUSEPORT (the kernel spreads new connections over them) and hand tensors to the engines
through shared memory (docs/runtime-architecture.md).

The engine process also supervises: it forwards SIGTERM and SIGINT, and when a front end ends on
its own it stops the others and exits with that front end's status, so the container restarts
whole instead of serving at part strength; a front end whose engine process is gone ends too.
Metrics live in a directory they share (prometheus_client's multiprocess mode, so /metrics on
any front end counts every process).

A generative model (``--task``) is served the same way: its one GenAI pipeline lives in the
engine process, and the front ends forward OpenAI's calls to it (``generative.remote``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kubevino_runtime.forked import Launcher

log = logging.getLogger("kubevino.workers")

FRONT_END_INDEX_ENV = "KUBEVINO_FRONT_END_INDEX"
ENGINE_CHANNEL_FD_ENV = "KUBEVINO_ENGINE_CHANNEL_FD"
# How front ends start: "fork" (one launcher imports once, forks them all: pages shared
# copy-on-write) or "spawn" (a fresh interpreter each); bench/runtime_memory.py compares them.
START_METHOD_ENV = "KUBEVINO_FRONT_END_START"
GROUP_DIR_ENV = "KUBEVINO_WORKER_GROUP_DIR"
GROUP_SIZE_ENV = "KUBEVINO_WORKER_GROUP_SIZE"
WORKER_INDEX_ENV = "KUBEVINO_WORKER_INDEX"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_READY_PREFIX = "ready-"


@dataclass(frozen=True)
class WorkerGroup:
    """What a worker knows of its group: the shared directory, the group's size, its index."""

    directory: Path
    size: int
    index: int

    @classmethod
    def from_environment(cls) -> WorkerGroup | None:
        directory = os.environ.get(GROUP_DIR_ENV)
        if not directory:
            return None
        return cls(
            Path(directory),
            int(os.environ.get(GROUP_SIZE_ENV, "1")),
            int(os.environ.get(WORKER_INDEX_ENV, "0")),
        )

    @property
    def _own_marker(self) -> Path:
        return self.directory / f"{_READY_PREFIX}{os.getpid()}"

    def report_ready(self, ready: bool) -> None:
        if ready:
            self._own_marker.touch()
        else:
            self._own_marker.unlink(missing_ok=True)

    def all_ready(self) -> bool:
        markers = [p for p in self.directory.iterdir() if p.name.startswith(_READY_PREFIX)]
        return len(markers) >= self.size


@dataclass(frozen=True)
class FrontEndRole:
    """What a front-end process is told by the engine process that started it."""

    index: int
    channel_fd: int

    @classmethod
    def from_environment(cls) -> FrontEndRole | None:
        fd = os.environ.get(ENGINE_CHANNEL_FD_ENV)
        if not fd:
            return None
        return cls(int(os.environ.get(FRONT_END_INDEX_ENV, "0")), int(fd))


def forks_front_ends() -> bool:
    """Whether front ends are forked from one launcher (the default), not each a fresh
    interpreter."""
    return os.environ.get(START_METHOD_ENV, "fork") != "spawn"


def share_metrics(directory: Path) -> None:
    """Count this process's metrics in ``directory``, with its front ends' (they inherit the
    setting). prometheus_client picks its value store when imported, before the flags say
    whether there are front ends: switch it here, before any metric exists."""
    from prometheus_client import values

    os.environ[METRICS_DIR_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class FrontEndProcess(Protocol):
    """What supervision needs of a front end: a started process or an adopted one."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def send_signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


class FrontEnds:
    """The engine process's front-end processes: started, watched, stopped."""

    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        grace_seconds: float,
        metrics_dir: Path,
        launcher: Launcher | None = None,
    ) -> None:
        """``launcher``: the one forked at start (``entry``), if any."""
        self.argv = list(argv)
        self.count = count
        self.grace_seconds = grace_seconds
        self.metrics_dir = metrics_dir
        self.launcher = launcher
        self.processes: list[FrontEndProcess] = []

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    async def start(self, connect: Callable[[int, socket.socket], None]) -> None:
        if not forks_front_ends():
            await self._spawn(connect)
        else:
            await self._fork(connect)
        log.info("front ends started: pids %s", ", ".join(str(pid) for pid in self.pids))

    async def _fork(self, connect: Callable[[int, socket.socket], None]) -> None:
        """The launcher imported the front end's modules once and forks the front ends
        (forked.py), then exits: they become this process's children."""
        from kubevino_runtime.channel import socket_pair
        from kubevino_runtime.forked import AdoptedProcess, Launcher, become_subreaper

        become_subreaper()
        launcher = self.launcher or await Launcher.start(self.argv)
        self.launcher = None
        pairs = [socket_pair() for _ in range(self.count)]
        try:
            pids = await launcher.launch([front_end_end for _, front_end_end in pairs])
        finally:
            for _, front_end_end in pairs:
                front_end_end.close()
        for index, ((engine_end, _), pid) in enumerate(zip(pairs, pids, strict=True)):
            self.processes.append(AdoptedProcess(pid))
            connect(index, engine_end)

    async def _spawn(self, connect: Callable[[int, socket.socket], None]) -> None:
        from kubevino_runtime.channel import socket_pair

        for index in range(self.count):
            engine_end, front_end_end = socket_pair()
            env = {
                **os.environ,
                FRONT_END_INDEX_ENV: str(index),
                ENGINE_CHANNEL_FD_ENV: str(front_end_end.fileno()),
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "kubevino_runtime.frontend_main",  # a fresh, lean interpreter (frontend_main)
                *self.argv,
                env=env,
                pass_fds=(front_end_end.fileno(),),
            )
            front_end_end.close()  # the front end's own now: its end closes when it ends
            self.processes.append(process)
            connect(index, engine_end)

    async def first_to_end(self) -> FrontEndProcess:
        waits = {asyncio.ensure_future(process.wait()): process for process in self.processes}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        ended = waits[next(iter(done))]
        _forget_metrics_of(ended.pid, self.metrics_dir)
        return ended

    async def stop(self, signum: int) -> int | None:
        """Pass ``signum`` on and wait (grace period, then kill); the first failing front
        end's exit status, if any."""
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signum)
        waiting = [asyncio.ensure_future(process.wait()) for process in self.processes]
        _, late = await asyncio.wait(waiting, timeout=self.grace_seconds + 5)
        if late:
            for process in self.processes:
                if process.returncode is None:
                    log.error(
                        "front end %d did not stop in the grace period: killing it", process.pid
                    )
                    process.kill()
            await asyncio.gather(*late)
        for process in self.processes:
            _forget_metrics_of(process.pid, self.metrics_dir)
        failures = [p.returncode for p in self.processes if p.returncode]
        return exit_status(failures[0]) if failures else None


def exit_status(returncode: int) -> int:
    """A shell's convention: a worker killed by signal N makes the group exit 128 + N."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


def _forget_metrics_of(pid: int, metrics_dir: Path) -> None:
    """Live gauges of an ended worker must not count any more (prometheus_client's rule)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
