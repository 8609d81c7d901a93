"""Images tier: the Dockerfile's targets built with podman and run for real."""

from __future__ import annotations

import os

import pytest

from kubevino_devcluster.images import built_images


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("the images tier builds and runs images with rootful podman: run as root")
    return built_images()
