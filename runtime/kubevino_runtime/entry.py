"""kubevino-serve's entry point (the ``kubevino-serve`` script, ``python -m kubevino_runtime``).

With ``--workers N`` and forked front ends (the default) it forks the front ends' launcher
first, before this process imports OpenVINO and the engine's modules (``forked.Launcher.fork``):
the pod then holds the interpreter's and the protocol libraries' heap once, shared by the engine
process and every front end, instead of once more in a launcher of its own
(bench/runtime_memory.py). Then it runs the server (``server.main``), which hands the launcher
the front ends' channels once it has compiled the models.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from kubevino_runtime.parity import UsageError
from kubevino_runtime.startup import parse_arguments
from kubevino_runtime.workers import WorkerGroup, forks_front_ends


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    launcher = None
    try:
        args = parse_arguments(argv)  # --help and --version end here
    except UsageError:
        args = None  # the server reports it
    if (
        args is not None
        and args.workers > 1
        and WorkerGroup.from_environment() is None
        and forks_front_ends()
    ):
        from kubevino_runtime.forked import Launcher

        launcher = Launcher.fork(args)
    from kubevino_runtime.server import main as serve

    return serve(argv, launcher)


if __name__ == "__main__":
    sys.exit(main())
