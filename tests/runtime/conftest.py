"""Runtime tier: the real server process, real OpenVINO, the bundled model, real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openvino as ov
import pytest

from kubevino_runtime.demo_model import sample_input, write_model
from tests.runtime.serving import RunningServer, running_server

MAX_REQUEST_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("models") / "classifier"
    write_model(base)
    return base


@pytest.fixture(scope="session")
def image() -> npt.NDArray[np.float32]:
    return sample_input()


@pytest.fixture(scope="session")
def expected(model_dir: Path, image: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
    """What in-process OpenVINO answers for the same input on the same device."""
    compiled = ov.Core().compile_model(str(model_dir / "1" / "model.xml"), "CPU")
    result: npt.NDArray[Any] = compiled(image)[0]
    return result


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        [
            "--model_path",
            str(model_dir),
            "--model_name",
            "classifier",
            "--max_request_bytes",
            str(MAX_REQUEST_BYTES),
            "--metrics_enable",
        ],
        tmp_path_factory.mktemp("server"),
    ) as running:
        running.wait_ready()
        yield running
