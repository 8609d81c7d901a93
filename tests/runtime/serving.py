"""Start the real ``kubevino-serve`` process for a test and stop it by pid afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

from kubevino_devcluster.ports import free_ports


def _with_dev(dev: Path) -> list[str]:
    # unshare and sh both exec: the server keeps the pid Popen knows.
    script = 'mount --rbind "$0" /dev && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(dev)]


def kserve_binary_request(
    image: npt.NDArray[np.float32], input_name: str = "input"
) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 REST infer request with the tensor as binary data, and its headers."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": image.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return header + image.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def _in_cgroup(cgroup: Path) -> list[str]:
    script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
    return ["sh", "-c", script, str(cgroup)]


WITHOUT_CAPABILITIES = [
    "setpriv",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
]


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    rest_port: int
    grpc_port: int
    log_path: Path
    termination_log: Path

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for(
            lambda: httpx.get(f"{self.rest}/v2/health/ready").status_code == 200, timeout, "ready"
        )

    def wait_for(self, condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}):\n{self.log()}")
            try:
                if condition():  # type: ignore[operator]
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not {what} after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def running_server(
    args: list[str],
    tmp_path: Path,
    *,
    wait_live: bool = True,
    env: dict[str, str] | None = None,
    unprivileged: bool = False,
    dev: Path | None = None,
    cgroup: Path | None = None,
    module: str = "kubevino_runtime",
) -> Iterator[RunningServer]:
    """``module``: what ``python -m`` runs (``kubevino_runtime``, as the ``kubevino-serve``
    script does). ``unprivileged``: without any capability (as root, so it still reads this
    venv), so file modes bind it as they bind a pod's process. ``dev``: a directory the server
    sees as its ``/dev`` (bind-mounted in a mount namespace of its own, gone with the process),
    the way a container sees only the device nodes it was given. ``cgroup``: a cgroup directory
    the server starts in (its quota binds the server from its first instruction)."""
    rest_port, grpc_port = free_ports(2)
    log_path = tmp_path / f"server-{rest_port}.log"
    command = [
        sys.executable,
        "-m",
        module,
        "--port",
        str(grpc_port),
        "--rest_port",
        str(rest_port),
        "--rest_bind_address",
        "127.0.0.1",
        "--grpc_bind_address",
        "127.0.0.1",
        "--file_system_poll_wait_seconds",
        "0.3",
        *args,
    ]
    environment = {**os.environ, "KUBEVINO_TERMINATION_LOG": str(tmp_path / "termination-log")}
    environment.update(env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(_in_cgroup(cgroup) if cgroup is not None else []),
                *(_with_dev(dev) if dev is not None else []),
                *(WITHOUT_CAPABILITIES if unprivileged else []),
                *command,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    server = RunningServer(
        process, rest_port, grpc_port, log_path, Path(environment["KUBEVINO_TERMINATION_LOG"])
    )
    try:
        if wait_live:
            server.wait_for(
                lambda: httpx.get(f"{server.rest}/v2/health/live").status_code == 200, 60, "live"
            )
        yield server
    finally:
        server.stop()
