"""Several server processes behind the same ports (``--workers N``).

One process's event loop tops out near a thousand requests a second (bench/runtime_throughput.py
on 16 cores: the loop thread busy in gRPC's per-call work), well below what OpenVINO computes on
many cores with a small model. Each worker is a complete server with its own event loop and its
own compiled models; the workers share the gRPC and REST ports through SO_REUSEPORT, so the
kernel spreads new connections over them (a connection stays with one worker).

The process started by the container only supervises: it forwards SIGTERM and SIGINT, and when a
worker ends on its own it stops the others and exits with that worker's status, so the container
restarts whole instead of serving at part strength. The workers share a directory: metrics live
there (prometheus_client's multiprocess mode, so /metrics on any worker counts all of them) and
so does readiness (a worker answers ready only while every worker is ready).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger("kubevino.workers")

GROUP_DIR_ENV = "KUBEVINO_WORKER_GROUP_DIR"
GROUP_SIZE_ENV = "KUBEVINO_WORKER_GROUP_SIZE"
WORKER_INDEX_ENV = "KUBEVINO_WORKER_INDEX"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_READY_PREFIX = "ready-"
_POLL_SECONDS = 0.2


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


def supervise(argv: Sequence[str], workers: int, grace_seconds: float) -> int:
    """Run ``workers`` copies of the server with ``argv``; return the exit status for the
    container (0 after a clean SIGTERM, else the first failing worker's status)."""
    group_dir = Path(tempfile.mkdtemp(prefix="kubevino-workers-"))
    metrics_dir = group_dir / "metrics"
    metrics_dir.mkdir()
    base_env = {
        **os.environ,
        GROUP_DIR_ENV: str(group_dir),
        GROUP_SIZE_ENV: str(workers),
        METRICS_DIR_ENV: str(metrics_dir),
    }
    stopping: list[int] = []

    def forward(signum: int, _: FrameType | None) -> None:
        # Only noted here: _wait passes it on, also to a worker started after it arrived.
        stopping.append(signum)

    children: list[subprocess.Popen[bytes]] = []
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            env = {**base_env, WORKER_INDEX_ENV: str(index)}
            children.append(
                subprocess.Popen([sys.executable, "-m", "kubevino_runtime", *argv], env=env)
            )
        pids = ", ".join(str(child.pid) for child in children)
        log.info("supervising %d workers: pids %s", workers, pids)
        return _wait(children, stopping, grace_seconds, metrics_dir)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(group_dir, ignore_errors=True)


def _wait(
    children: list[subprocess.Popen[bytes]],
    stopping: list[int],
    grace_seconds: float,
    metrics_dir: Path,
) -> int:
    failure: int | None = None
    running = list(children)
    deadline: float | None = None
    while running:
        if stopping and deadline is None:
            for child in running:
                child.send_signal(stopping[0])
            deadline = time.monotonic() + grace_seconds + 5
        time.sleep(_POLL_SECONDS)
        for child in [c for c in running if c.poll() is not None]:
            running.remove(child)
            _forget_metrics_of(child.pid, metrics_dir)
            if not stopping:
                failure = _exit_status(child.returncode)
                log.error(
                    "worker %d ended with status %d while serving: stopping the others",
                    child.pid,
                    child.returncode,
                )
                stopping.append(signal.SIGTERM)
            elif child.returncode and failure is None:
                failure = _exit_status(child.returncode)
        if deadline is not None and time.monotonic() > deadline:
            for child in running:
                log.error("worker %d did not stop within the grace period: killing it", child.pid)
                child.kill()
    return failure or 0


def _exit_status(returncode: int) -> int:
    """A shell's convention: a worker killed by signal N makes the group exit 128 + N."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


def _forget_metrics_of(pid: int, metrics_dir: Path) -> None:
    """Live gauges of an ended worker must not count any more (prometheus_client's rule)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
