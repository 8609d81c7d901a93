"""``python -m kubevino_runtime.frontend_main <flags>``: the front ends of ``--workers N``,
started by the engine process with the same flags.

Imports only what speaks the protocols (aiohttp, grpc, protobuf, numpy, prometheus_client):
never OpenVINO, OpenVINO GenAI or the engine's modules, and none of the engine process's heap
(tests/runtime/test_workers.py checks what a front end has loaded). Given one channel it is one
front end (``KUBEVINO_FRONT_END_START=spawn``); given a control socket it is the launcher,
which forks a front end per channel the engine process sends it (forked.py; the engine process
usually forks the launcher itself at start and calls ``run_launcher``; bench/runtime_memory.py
measures the ways).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from kubevino_runtime.forked import LAUNCHER_CONTROL_FD_ENV, name_process, receive_launch
from kubevino_runtime.frontserver import serve_front_end
from kubevino_runtime.parity import UsageError
from kubevino_runtime.startup import configure_logging, one_malloc_arena, parse_arguments
from kubevino_runtime.workers import METRICS_DIR_ENV, FrontEndRole, share_metrics

NOT_STARTED_BY_ENGINE = "kubevino_runtime.frontend_main is started by kubevino-serve --workers N\n"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:  # the engine process parsed the same flags: not expected
        sys.stderr.write(f"kubevino-serve front end cannot start: {error}\n")
        return 2
    control = os.environ.get(LAUNCHER_CONTROL_FD_ENV)
    if control:
        import_front_end_modules(args)
        return run_launcher(args, socket.socket(fileno=int(control)))
    role = FrontEndRole.from_environment()
    if role is None:
        sys.stderr.write(NOT_STARTED_BY_ENGINE)
        return 2
    return _serve(args, role)


def import_front_end_modules(args: argparse.Namespace) -> None:
    """What a front end imports beyond this module's imports, so the launcher imports it once
    for all its front ends."""
    if args.task:  # OpenAI's front-end modules (see frontserver)
        import kubevino_runtime.generative.openai_http
        import kubevino_runtime.generative.remote  # noqa: F401


def run_launcher(args: argparse.Namespace, control: socket.socket) -> int:
    """Wait for the engine process's environment and channels on ``control``, fork one front
    end per channel, answer their pids on ``control`` and return (the launcher exits; the
    engine process adopts them). Every module a front end needs is imported by now."""
    name_process("kubevino-launch")
    launch = receive_launch(control, args.workers)
    if launch is None:
        return 0
    environment, channel_fds = launch
    os.environ.clear()
    os.environ.update(environment)
    if METRICS_DIR_ENV in environment:  # prometheus_client chose its store before it was set
        share_metrics(Path(environment[METRICS_DIR_ENV]))
    gc.collect()
    gc.freeze()  # the collector leaves the shared objects' pages alone in the children
    pids = []
    for index, fd in enumerate(channel_fds):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                control.close()
                for other in channel_fds:
                    if other != fd:
                        os.close(other)
                status = _serve(args, FrontEndRole(index, fd))
            except BaseException:
                logging.getLogger("kubevino.server").exception("front end %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)  # never back into the launcher's code
        pids.append(pid)
    control.send(" ".join(str(pid) for pid in pids).encode())
    control.close()
    return 0


def _serve(args: argparse.Namespace, role: FrontEndRole) -> int:
    name_process(f"kubevino-fe {role.index}")
    one_malloc_arena()
    configure_logging(args, f" [front end {role.index}]")
    return asyncio.run(serve_front_end(args, role))


if __name__ == "__main__":
    sys.exit(main())
