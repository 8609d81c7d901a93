"""How a tensor's shape and values are read from a request: every value that does not fit the
datatype, and every shape no tensor can have, is a client error naming it — decided before
anything is allocated, never by numpy wrapping, truncating or raising on its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.tensors import (
    KSERVE_TO_NUMPY,
    MAX_RANK,
    checked_shape,
    from_json_data,
    from_raw,
    from_typed_contents,
)

FP16, FP32 = KSERVE_TO_NUMPY["FP16"], KSERVE_TO_NUMPY["FP32"]
UINT8, INT32, INT64, UINT64 = (
    KSERVE_TO_NUMPY[name] for name in ("UINT8", "INT32", "INT64", "UINT64")
)
BOOL = KSERVE_TO_NUMPY["BOOL"]


def refusal(call: Any, *args: Any) -> str:
    with pytest.raises(ServingError) as caught:
        call(*args)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("2x3", "'shape' must be a list of integers"),
        ([2, 3.0], "'shape' must be a list of integers"),
        ([True, 3], "'shape' must be a list of integers"),
        ([2, -1], "has a negative dimension"),
        ([1] * (MAX_RANK + 1), f"more than the {MAX_RANK} accepted"),
        # every dimension fits 64 bits, their product does not
        ([2**32, 2**32], "more than any tensor can hold"),
        ([10**30], "more than any tensor can hold"),
        # no element, yet numpy could not reshape to it: zero dimensions count as one
        ([0, 2**62, 4], "more than any tensor can hold"),
    ],
)
def test_shapes_no_tensor_can_have_are_refused_by_name(shape: Any, message: str) -> None:
    assert message in refusal(checked_shape, shape, FP32, "x")


def test_a_zero_sized_shape_within_the_addressable_size_is_a_shape() -> None:
    assert checked_shape([0, 2**40], FP32, "x") == (0, 2**40)
    assert from_json_data([], [0, 3], INT32, "x").shape == (0, 3)


@pytest.mark.parametrize(
    ("data", "dtype", "message"),
    [
        ([1, 300], UINT8, "300 is outside UINT8's range 0..255"),
        ([-1], UINT8, "-1 is outside UINT8's range 0..255"),
        ([2**31], INT32, "2147483648 is outside INT32's range"),
        ([2**63], INT64, "9223372036854775808 is outside INT64's range"),
        ([2**70], UINT64, "1180591620717411303424 is outside UINT64's range"),
        ([1.5], INT32, "INT32 takes integers, data holds 1.5"),
        ([2.0], INT32, "INT32 takes integers, data holds 2.0"),
        ([float("inf")], INT32, "INT32 takes integers, data holds inf"),  # JSON 1e999
        ([True], INT32, "INT32 takes integers, data holds true"),
        ([None], UINT8, "UINT8 takes integers, data holds null"),
        ([1e39], FP32, "1e+39 is outside FP32's range"),
        ([65520.0], FP16, "65520.0 is outside FP16's range"),
        ([10**400], FP32, "is outside FP32's range"),
        ([float("inf")], FP32, "beyond a 64-bit float's range"),  # JSON 1e999
        # numbers of mixed kinds numpy keeps as Python objects
        ([float("inf"), -(2**63) - 1], FP32, "beyond a 64-bit float's range (inf)"),
        ([1e39, 2**70], FP32, "1e+39 is outside FP32's range"),
        ([None, 1.0], FP32, "FP32 takes numbers, data holds null"),
        (["1.0"], FP32, 'FP32 takes numbers, data holds "1.0"'),
        ([True], FP32, "FP32 takes numbers, data holds true"),
        ([{"v": 1}], FP32, "FP32 takes numbers, data holds {'v': 1}"),
        ([1], BOOL, "BOOL takes true or false, data holds 1"),
        ([[1, 2], [3]], FP32, "not a regular array of numbers"),
    ],
)
def test_json_values_that_do_not_fit_the_datatype_are_named(
    data: Any, dtype: np.dtype[Any], message: str
) -> None:
    shape = [len(data)] if not isinstance(data[0], list) else [3]
    assert message in refusal(from_json_data, data, shape, dtype, "x")


@pytest.mark.parametrize(
    ("data", "dtype", "expected"),
    [
        ([0, 255], UINT8, [0, 255]),
        ([2**64 - 1], UINT64, [2**64 - 1]),
        ([-(2**63)], INT64, [-(2**63)]),
        ([65504.0, 1], FP16, [65504.0, 1.0]),
        ([10**30, 0.5], FP32, [1e30, 0.5]),  # an integer beyond 64 bits is still a number
        ([3.4e38], FP32, [3.4e38]),
        ([True, False], BOOL, [True, False]),
    ],
)
def test_json_values_at_the_edges_of_the_datatype_are_kept_exactly(
    data: list[Any], dtype: np.dtype[Any], expected: list[Any]
) -> None:
    array = from_json_data(data, [len(data)], dtype, "x")
    assert array.dtype == dtype
    np.testing.assert_array_equal(array, np.array(expected, dtype=dtype))


def test_nested_json_data_takes_the_declared_shape() -> None:
    array = from_json_data([[1, 2, 3], [4, 5, 6]], [3, 2], INT32, "x")
    assert array.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert "shape [4] needs 4 values, data has 6" in refusal(
        from_json_data, [[1, 2, 3], [4, 5, 6]], [4], INT32, "x"
    )


def test_grpc_typed_contents_are_range_checked_but_may_be_non_finite() -> None:
    # uint_contents carries UINT8 as uint32: 300 fits the field, not the datatype
    assert "300 is outside UINT8's range" in refusal(
        from_typed_contents, [1, 300], [2], UINT8, "pixels"
    )
    values = from_typed_contents([float("nan"), float("-inf")], [2], FP32, "x")
    assert np.isnan(values[0]) and values[1] == -np.inf


def test_raw_bytes_must_be_exactly_the_shape_times_the_item_size() -> None:
    assert "needs 24 bytes, got 23" in refusal(from_raw, b"\0" * 23, [2, 3], FP32, "x")
    assert "more than any tensor can hold" in refusal(from_raw, b"", [2**32, 2**32], FP32, "x")
    assert from_raw(b"\0" * 24, [2, 3], FP32, "x").shape == (2, 3)
