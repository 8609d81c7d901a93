"""The project's images, built by scripts/build-images.sh, and podman as the tests drive it."""

from __future__ import annotations

import functools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from kubevino_devcluster.controlplane import REPO
from kubevino_devcluster.ports import free_ports

TARGETS = ("operator", "runtime", "runtime-gpu")
LOCKED_DOWN = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# Containers that need no network get none: no host bridge, no host firewall rules.
ISOLATED = [*LOCKED_DOWN, "--network", "none"]


def podman_environment() -> dict[str, str]:
    cache = Path(os.environ.get("KUBEVINO_CACHE", Path.home() / ".cache" / "kubevino"))
    return {**os.environ, "CONTAINERS_CONF": str(cache / "containers.conf")}


def podman(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args],
        env=podman_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


@functools.cache
def built_images() -> dict[str, str]:
    """Target → tag; builds (or refreshes from podman's layer cache) every target once."""
    done = subprocess.run(
        [str(REPO / "scripts" / "build-images.sh"), *TARGETS],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise AssertionError(f"build-images.sh failed:\n{done.stderr[-6000:]}")
    tags = done.stdout.split()
    return dict(zip(TARGETS, tags, strict=True))


def built_images_saved(targets: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Path]]:
    """Tags and docker-archives (for containerd) of some targets, saved under the cache."""
    tags = built_images()
    cache = Path(podman_environment()["CONTAINERS_CONF"]).parent / "image-archives"
    cache.mkdir(parents=True, exist_ok=True)
    archives: dict[str, Path] = {}
    for target in targets:
        image_id = podman("image", "inspect", "--format", "{{.Id}}", tags[target]).stdout.strip()
        archive = cache / f"{target}-{image_id[:16]}.tar"
        if not archive.exists():
            for stale in cache.glob(f"{target}-*.tar"):
                stale.unlink()
            partial = archive.with_suffix(".partial")
            podman("save", "--format", "docker-archive", "-o", str(partial), tags[target])
            partial.rename(archive)
        archives[target] = archive
    return {target: tags[target] for target in targets}, archives


@dataclass(frozen=True)
class ServingContainer:
    name: str
    rest: str  # http://127.0.0.1:PORT, the image's REST port 8000
    grpc: str  # 127.0.0.1:PORT, the image's gRPC port 9000


@contextmanager
def serving_container(
    image: str, models: Path, args: list[str], ready_within: float = 120
) -> Iterator[ServingContainer]:
    """A model-server image serving from ``models`` (mounted read-only at /models) on its
    default ports (what its health check probes), locked down as a cluster runs it and
    published on loopback only; ready (``/v2/health/ready``) before it is yielded."""
    rest_port, grpc_port = free_ports(2)
    name = f"kubevino-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        *LOCKED_DOWN,
        # slirp4netns: published ports without a host bridge or host firewall rules.
        "--network",
        "slirp4netns:port_handler=slirp4netns",
        "--publish",
        f"127.0.0.1:{rest_port}:8000",
        "--publish",
        f"127.0.0.1:{grpc_port}:9000",
        "--volume",
        f"{models}:/models:ro",
        image,
        *args,
    )
    rest = f"http://127.0.0.1:{rest_port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if httpx.get(f"{rest}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", name, check=False)
                raise AssertionError(f"{image} not ready:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.5)
        yield ServingContainer(name, rest, f"127.0.0.1:{grpc_port}")
    finally:
        podman("rm", "--force", "--time", "10", name, check=False)
