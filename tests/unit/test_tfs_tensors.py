"""TensorProto inputs are read from tensor_content or from the typed field TensorFlow assigns to
their dtype; every mistake is a client error that says what is wrong, found before allocating."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.protocols.tfs_api.tensorflow.core.framework import tensor_pb2, types_pb2
from kubevino_runtime.protocols.tfs_tensors import decode_tensor, fill_tensor, tf_dtype

TensorProto = tensor_pb2.TensorProto


def _proto(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    proto = TensorProto(dtype=dtype, **fields)  # type: ignore[arg-type]
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _client_error(proto: tensor_pb2.TensorProto) -> str:
    with pytest.raises(ServingError) as caught:
        decode_tensor("x", proto)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


ARRAYS = [
    np.array([[1.5, -2.25], [3.0, 1e-3]], dtype=np.float32),
    np.array([1.5, -2.0, 1e300], dtype=np.float64),
    np.array([[0.5, -65504.0], [6.1e-5, 1.0]], dtype=np.float16),
    np.array([-128, 0, 127], dtype=np.int8),
    np.array([-32768, 5, 32767], dtype=np.int16),
    np.array([-(2**31), 7, 2**31 - 1], dtype=np.int32),
    np.array([-(2**63), 7, 2**63 - 1], dtype=np.int64),
    np.array([0, 200, 255], dtype=np.uint8),
    np.array([0, 40000, 65535], dtype=np.uint16),
    np.array([0, 2**32 - 1], dtype=np.uint32),
    np.array([0, 2**64 - 1], dtype=np.uint64),
    np.array([True, False, True], dtype=np.bool_),
]
TYPED_FIELD = {
    "float32": "float_val",
    "float64": "double_val",
    "int8": "int_val",
    "int16": "int_val",
    "int32": "int_val",
    "int64": "int64_val",
    "uint8": "int_val",
    "uint16": "int_val",
    "uint32": "uint32_val",
    "uint64": "uint64_val",
    "bool": "bool_val",
}


@pytest.mark.parametrize("array", ARRAYS, ids=lambda array: str(array.dtype))
def test_outputs_in_tensor_content_read_back_as_the_same_array(
    array: npt.NDArray[Any],
) -> None:
    proto = TensorProto()
    fill_tensor(proto, array)
    assert proto.tensor_content == array.tobytes()
    assert [dim.size for dim in proto.tensor_shape.dim] == list(array.shape)
    decoded = decode_tensor("x", proto)
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("array", ARRAYS, ids=lambda array: str(array.dtype))
def test_each_dtype_is_read_from_the_typed_field_tensorflow_uses_for_it(
    array: npt.NDArray[Any],
) -> None:
    if array.dtype == np.float16:  # half_val carries the bit patterns
        field, values = "half_val", array.view(np.uint16).reshape(-1).tolist()
    else:
        field, values = TYPED_FIELD[str(array.dtype)], array.reshape(-1).tolist()
    proto = _proto(tf_dtype(array.dtype), list(array.shape), **{field: values})
    decoded = decode_tensor("x", proto)
    assert decoded.dtype == array.dtype
    np.testing.assert_array_equal(decoded, array)


def test_a_zero_sized_tensor_needs_no_values() -> None:
    decoded = decode_tensor("x", _proto(types_pb2.DT_FLOAT, [0, 3]))
    assert decoded.shape == (0, 3)


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (_proto(types_pb2.DT_INVALID, [1], float_val=[1]), "input x: dtype is not set"),
        (_proto(types_pb2.DT_STRING, [1], string_val=[b"a"]), "DT_STRING is not supported"),
        (_proto(types_pb2.DT_COMPLEX64, [1]), "DT_COMPLEX64 is not supported"),
        (_proto(999, [1]), "dtype 999 is not supported"),
        (
            _proto(types_pb2.DT_FLOAT, [2, 3], tensor_content=b"\0" * 20),
            "shape [2, 3] of DT_FLOAT needs 24 bytes of tensor_content, got 20",
        ),
        (
            _proto(types_pb2.DT_FLOAT, [2**32, 2**32], tensor_content=b"\0" * 4),
            "more than any tensor can hold",
        ),
        (
            _proto(types_pb2.DT_FLOAT, [2**40, 2**40]),
            "more than any tensor can hold",
        ),
        (_proto(types_pb2.DT_FLOAT, [3], float_val=[1.0]), "needs 3 values in float_val, got 1"),
        (_proto(types_pb2.DT_FLOAT, [1, -1], float_val=[1.0]), "negative dimension"),
        (
            _proto(types_pb2.DT_FLOAT, [2], tensor_content=b"\0" * 8, float_val=[1, 2]),
            "values are in tensor_content and in float_val",
        ),
        (
            _proto(types_pb2.DT_FLOAT, [2], int_val=[1, 2]),
            "DT_FLOAT values go in float_val or tensor_content, not in int_val",
        ),
        (_proto(types_pb2.DT_INT8, [2], int_val=[1, 300]), "outside -128..127"),
        (_proto(types_pb2.DT_UINT16, [1], int_val=[-1]), "outside 0..65535"),
        (_proto(types_pb2.DT_HALF, [1], half_val=[70000]), "outside 0..65535"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_client_mistakes_are_named(proto: tensor_pb2.TensorProto, message: str) -> None:
    assert message in _client_error(proto)


def test_a_tensor_of_unknown_rank_is_refused() -> None:
    proto = _proto(types_pb2.DT_FLOAT, [], float_val=[1.0])
    proto.tensor_shape.unknown_rank = True
    assert "unknown_rank" in _client_error(proto)
