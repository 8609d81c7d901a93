"""The models the fuzz tier serves, built at test time with OpenVINO's graph API.

Each is tiny, so a valid request is a few bytes and thousands of cases fit in CI, yet together
they reach every decoding rule: an FP32 input of static shape (two versions), a dynamic input
with a bounded and an unbounded dimension, and integer inputs (UINT8, INT32) whose ranges a
client can overflow. Each also has a known-valid request, whose answer the tier compares with
in-process OpenVINO after every batch of cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.opset13 as ops

Arrays = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class FuzzModel:
    name: str
    versions: tuple[int, ...]
    build: Callable[[int], ov.Model]
    known_valid: Arrays  # inputs of a request every version must answer

    @property
    def latest(self) -> int:
        return max(self.versions)


def _affine(version: int) -> ov.Model:
    """``scaled = x * k + b`` and its row sums; k and b differ per version, so an answer
    tells which version computed it."""
    scale, bias = {1: (2.0, 1.0), 2: (3.0, -1.0)}[version]
    x = ops.parameter([2, 3], np.float32, name="x")
    scaled = ops.add(
        ops.multiply(x, ops.constant(np.float32(scale))), ops.constant(np.float32(bias))
    )
    scaled.output(0).set_names({"scaled"})
    total = ops.reduce_sum(scaled, ops.constant(np.array([1], dtype=np.int64)), keep_dims=False)
    total.output(0).set_names({"total"})
    return ov.Model([scaled, total], [x], f"fuzz-affine-v{version}")


def _ranged(version: int) -> ov.Model:
    """A batch of 1 to 8 rows of any length: each row's sum of squares."""
    rows = ov.PartialShape([ov.Dimension(1, 8), ov.Dimension()])
    x = ops.parameter(rows, np.float32, name="rows")
    energy = ops.reduce_sum(
        ops.multiply(x, x), ops.constant(np.array([1], dtype=np.int64)), keep_dims=False
    )
    energy.output(0).set_names({"energy"})
    return ov.Model([energy], [x], "fuzz-ranged")


def _counts(version: int) -> ov.Model:
    """UINT8 pixels shifted by an INT32 offset, as INT32."""
    pixels = ops.parameter([1, 4], np.uint8, name="pixels")
    offset = ops.parameter([1, 1], np.int32, name="offset")
    shifted = ops.add(ops.convert(pixels, "i32"), offset)
    shifted.output(0).set_names({"shifted"})
    return ov.Model([shifted], [pixels, offset], "fuzz-counts")


AFFINE = FuzzModel(
    "affine",
    (1, 2),
    _affine,
    {"x": np.array([[0.5, -1.25, 3.0], [1e-3, 2.5e4, -7.0]], dtype=np.float32)},
)
RANGED = FuzzModel(
    "ranged",
    (1,),
    _ranged,
    {"rows": np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [-1.5, 0.0, 0.25, 8.0, 1e3]], np.float32)},
)
COUNTS = FuzzModel(
    "counts",
    (1,),
    _counts,
    {
        "pixels": np.array([[0, 7, 128, 255]], dtype=np.uint8),
        "offset": np.array([[-2147483000]], dtype=np.int32),
    },
)
MODELS = (AFFINE, RANGED, COUNTS)


def model_file(base: Path, model: FuzzModel, version: int) -> Path:
    return base / model.name / str(version) / "model.xml"


def write_repository(base: Path) -> Path:
    """Every model's versions under ``base`` and a Model Server config.json serving them all
    (every version of each); returns the config's path."""
    entries: list[dict[str, Any]] = []
    for model in MODELS:
        for version in model.versions:
            path = model_file(base, model, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(model.build(version), str(path), compress_to_fp16=False)
        entries.append(
            {
                "config": {
                    "name": model.name,
                    "base_path": str(base / model.name),
                    "model_version_policy": {"all": {}},
                }
            }
        )
    config = base / "config.json"
    config.write_text(json.dumps({"model_config_list": entries}))
    return config


class Reference:
    """In-process OpenVINO on the same IR files: what the server must answer."""

    def __init__(self, base: Path) -> None:
        core = ov.Core()
        self._compiled = {
            (model.name, version): core.compile_model(str(model_file(base, model, version)), "CPU")
            for model in MODELS
            for version in model.versions
        }

    def outputs(self, name: str, version: int, inputs: Arrays) -> Arrays:
        compiled = self._compiled[(name, version)]
        results = compiled(inputs)
        return {port.get_any_name(): np.asarray(results[port]) for port in compiled.outputs}
