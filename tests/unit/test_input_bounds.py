"""A dynamic dimension may be bounded (an IR's ``1..8``, ``--shape "(1:8,3)"``): a request
outside the bounds is refused by name before inference, where OpenVINO would fail it as a
server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from kubevino_runtime.engine import LoadedVersion
from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.repository import ModelConfig
from kubevino_runtime.served import TensorInfo


def _rows_model() -> ov.Model:
    rows = ops.parameter(ov.PartialShape([ov.Dimension(1, 8), ov.Dimension()]), np.float32)
    rows.output(0).set_names({"rows"})
    total = ops.reduce_sum(rows, ops.constant(np.array([1], dtype=np.int64)), keep_dims=False)
    total.output(0).set_names({"total"})
    return ov.Model([total], [rows], "rows")


@pytest.fixture(scope="module")
def loaded() -> Iterator[LoadedVersion]:
    compiled = ov.Core().compile_model(_rows_model(), "CPU")
    version = LoadedVersion(ModelConfig("rows", "/models/rows"), 1, compiled, 1, 1)
    yield version
    version.close()


def test_the_bounds_of_each_dimension_come_from_the_compiled_model(loaded: LoadedVersion) -> None:
    (info,) = loaded.inputs
    assert info.shape == (-1, -1)  # what metadata shows
    assert info.bounds == ((1, 8), (0, None))
    assert info.shape_text() == "[1..8, ?]"


@pytest.mark.parametrize("shape", [(1, 0), (8, 3), (2, 1000)])
def test_shapes_within_the_bounds_are_accepted(loaded: LoadedVersion, shape: Any) -> None:
    loaded.validate({"rows": np.zeros(shape, np.float32)})


@pytest.mark.parametrize("shape", [(0, 3), (9, 3), (3,), (1, 2, 3)])
def test_shapes_outside_the_bounds_are_refused_naming_them(
    loaded: LoadedVersion, shape: Any
) -> None:
    with pytest.raises(ServingError) as caught:
        loaded.validate({"rows": np.zeros(shape, np.float32)})
    assert caught.value.kind is ErrorKind.INVALID
    assert f"expects shape [-1, -1] ([1..8, ?]), got {list(shape)}" in caught.value.message


def test_a_static_shape_is_its_own_bounds() -> None:
    info = TensorInfo("x", np.dtype(np.float32), (2, 3), ((2, 2), (3, 3)))
    assert info.is_static and info.accepts((2, 3)) and not info.accepts((3, 2))
    assert info.shape_text() == "[2, 3]"
