"""``python -m kubevino_runtime.frontend_main <flags>``: a front-end process of ``--workers N``,
started by the engine process with the same flags.

A fresh interpreter that imports only what speaks the protocols (aiohttp, grpc, protobuf,
numpy, prometheus_client): never OpenVINO, OpenVINO GenAI or the engine's modules, and none of
the engine process's heap (bench/runtime_memory.py measures what that saves;
tests/runtime/test_workers.py checks what a front end has loaded).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from kubevino_runtime.frontserver import serve_front_end
from kubevino_runtime.parity import UsageError
from kubevino_runtime.startup import configure_logging, parse_arguments
from kubevino_runtime.workers import FrontEndRole


def main(argv: Sequence[str] | None = None) -> int:
    role = FrontEndRole.from_environment()
    if role is None:
        sys.stderr.write(
            "kubevino_runtime.frontend_main is started by kubevino-serve --workers N\n"
        )
        return 2
    try:
        args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
        configure_logging(args, f" [front end {role.index}]")
    except UsageError as error:  # the engine process parsed the same flags: not expected
        sys.stderr.write(f"kubevino-serve front end cannot start: {error}\n")
        return 2
    return asyncio.run(serve_front_end(args, role))


if __name__ == "__main__":
    sys.exit(main())
