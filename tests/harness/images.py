"""The project's images, built by scripts/build-images.sh, and podman as the tests drive it."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from tests.harness.controlplane import REPO

TARGETS = ("operator", "runtime", "runtime-gpu")


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
