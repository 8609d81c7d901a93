"""``python -m kubevino_runtime.frontend_main <flags>``: the front ends of ``--workers N``,
started by the engine process with the same flags.

A fresh interpreter that imports only what speaks the protocols (aiohttp, grpc, protobuf,
numpy, prometheus_client): never OpenVINO, OpenVINO GenAI or the engine's modules, and none of
the engine process's heap (tests/runtime/test_workers.py checks what a front end has loaded).
Given one channel it is one front end; given several it is the launcher that forks a front end
per channel after importing once (forked.py; bench/runtime_memory.py measures both ways).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Sequence

from kubevino_runtime.frontserver import serve_front_end
from kubevino_runtime.parity import UsageError
from kubevino_runtime.startup import configure_logging, parse_arguments
from kubevino_runtime.workers import LAUNCHER_CHANNEL_FDS_ENV, LAUNCHER_PIDS_FD_ENV, FrontEndRole

NOT_STARTED_BY_ENGINE = "kubevino_runtime.frontend_main is started by kubevino-serve --workers N\n"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:  # the engine process parsed the same flags: not expected
        sys.stderr.write(f"kubevino-serve front end cannot start: {error}\n")
        return 2
    channels = os.environ.get(LAUNCHER_CHANNEL_FDS_ENV)
    if channels:
        if args.task:  # OpenAI's front-end modules, imported once for all (see frontserver)
            import kubevino_runtime.generative.openai_http
            import kubevino_runtime.generative.remote  # noqa: F401
        pids_fd = int(os.environ[LAUNCHER_PIDS_FD_ENV])
        return _fork_front_ends(args, [int(fd) for fd in channels.split(",")], pids_fd)
    role = FrontEndRole.from_environment()
    if role is None:
        sys.stderr.write(NOT_STARTED_BY_ENGINE)
        return 2
    return _serve(args, role)


def _serve(args: argparse.Namespace, role: FrontEndRole) -> int:
    configure_logging(args, f" [front end {role.index}]")
    return asyncio.run(serve_front_end(args, role))


def _fork_front_ends(args: argparse.Namespace, channel_fds: list[int], pids_fd: int) -> int:
    """Fork one front end per channel; write their pids to ``pids_fd`` for the engine process
    and exit (it adopts them). Every module a front end needs is imported by now (this
    module's imports)."""
    gc.collect()
    gc.freeze()  # the collector leaves the shared objects' pages alone in the children
    pids = []
    for index, fd in enumerate(channel_fds):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                for other in [*channel_fds, pids_fd]:
                    if other != fd:
                        os.close(other)
                status = _serve(args, FrontEndRole(index, fd))
            except BaseException:
                logging.getLogger("kubevino.server").exception("front end %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)  # never back into the launcher's code
        pids.append(pid)
    os.write(pids_fd, " ".join(str(pid) for pid in pids).encode())
    os.close(pids_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
