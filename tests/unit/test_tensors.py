"""Shared tensor codecs: sizes are checked exactly before any array is shaped."""

from __future__ import annotations

import numpy as np
import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.tensors import checked_shape, from_json_data, from_raw

HUGE = [2**32, 2**32]  # 2**64 elements: an int64 product wraps around to 0


def test_sizes_are_exact_for_shapes_whose_product_overflows_int64() -> None:
    with pytest.raises(ServingError, match="more than any tensor can hold"):
        checked_shape(HUGE, np.dtype(np.float32), "x")
    assert checked_shape([], np.dtype(np.float32), "x") == ()


def test_a_huge_shape_with_an_empty_payload_is_a_client_error() -> None:
    with pytest.raises(ServingError) as raw:
        from_raw(b"", HUGE, np.dtype(np.float32), "x")
    assert raw.value.kind is ErrorKind.INVALID
    assert "more than any tensor can hold" in str(raw.value)
    with pytest.raises(ServingError) as data:
        from_json_data([], HUGE, np.dtype(np.float32), "x")
    assert data.value.kind is ErrorKind.INVALID


def test_a_negative_dimension_is_a_client_error() -> None:
    with pytest.raises(ServingError, match="negative dimension"):
        checked_shape([1, -1], np.dtype(np.float32), "x")
