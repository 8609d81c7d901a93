"""kubectl and helm as a user runs them against a cluster: one kubeconfig, from the host's
network namespace (a dev cluster's host-side kubeconfig, or any cluster's)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubevino_devcluster.controlplane import REPO

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


class KubeToolError(RuntimeError):
    """kubectl or helm failed; the message holds the command and what it said."""


@dataclass(frozen=True)
class KubeTools:
    kubeconfig: Path
    kubectl_binary: str
    helm_binary: str

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.kubectl_binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise KubeToolError(f"kubectl {' '.join(args)} failed:\n{done.stderr.strip()}")
        return done

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.helm_binary, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise KubeToolError(f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    @contextmanager
    def port_forward(self, namespace: str, target: str, *ports: int) -> Iterator[list[int]]:
        """``kubectl port-forward`` to ``ports`` of ``target`` from free loopback ports, which
        it yields in the same order, once kubectl says it forwards all of them."""
        process = subprocess.Popen(
            [self.kubectl_binary, "--kubeconfig", str(self.kubeconfig), "-n", namespace,
             "port-forward", "--address", "127.0.0.1", target, *(f":{port}" for port in ports)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            local: dict[int, int] = {}
            seen = ""
            deadline = time.monotonic() + 60
            while len(local) < len(ports):
                line = process.stdout.readline()
                if not line or time.monotonic() > deadline:
                    raise KubeToolError(f"kubectl port-forward {target} failed: {seen}{line}")
                seen += line
                found = _FORWARDING.search(line)
                if found:
                    local[int(found.group(2))] = int(found.group(1))
            yield [local[port] for port in ports]
        finally:
            process.terminate()
            process.wait(10)
