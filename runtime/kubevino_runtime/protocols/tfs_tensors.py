"""TensorFlow's TensorProto to numpy and back, for the TF-Serving front ends.

Inputs are read from ``tensor_content`` (raw little-endian bytes, what Model Server and its
clients use) or from the typed ``*_val`` field TensorFlow assigns to the dtype (what
``tf.make_tensor_proto`` writes for small tensors). Every size is checked against the shape in
exact integers before an array is made, so a shape never decides how much is allocated; only
bytes or values the client actually sent are. Outputs are written to ``tensor_content``, as
Model Server does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubevino_runtime.errors import invalid
from kubevino_runtime.protocols.tfs_api.tensorflow.core.framework import tensor_pb2, types_pb2
from kubevino_runtime.tensors import checked_shape


@dataclass(frozen=True)
class TfType:
    dtype: types_pb2.DataType
    numpy: np.dtype[Any]
    values_field: str  # the typed TensorProto field TensorFlow keeps this dtype's values in


_TYPES = (
    TfType(types_pb2.DT_FLOAT, np.dtype(np.float32), "float_val"),
    TfType(types_pb2.DT_DOUBLE, np.dtype(np.float64), "double_val"),
    TfType(types_pb2.DT_HALF, np.dtype(np.float16), "half_val"),
    TfType(types_pb2.DT_INT8, np.dtype(np.int8), "int_val"),
    TfType(types_pb2.DT_INT16, np.dtype(np.int16), "int_val"),
    TfType(types_pb2.DT_INT32, np.dtype(np.int32), "int_val"),
    TfType(types_pb2.DT_INT64, np.dtype(np.int64), "int64_val"),
    TfType(types_pb2.DT_UINT8, np.dtype(np.uint8), "int_val"),
    TfType(types_pb2.DT_UINT16, np.dtype(np.uint16), "int_val"),
    TfType(types_pb2.DT_UINT32, np.dtype(np.uint32), "uint32_val"),
    TfType(types_pb2.DT_UINT64, np.dtype(np.uint64), "uint64_val"),
    TfType(types_pb2.DT_BOOL, np.dtype(np.bool_), "bool_val"),
)
_BY_DTYPE = {entry.dtype: entry for entry in _TYPES}
_BY_NUMPY = {entry.numpy: entry for entry in _TYPES}
# Every repeated value field (float_val, int_val, ..., string_val, variant_val).
_VALUE_FIELDS = tuple(
    field.name for field in tensor_pb2.TensorProto.DESCRIPTOR.fields if field.name.endswith("_val")
)


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` for 1; the number itself for a value this copy of types.proto lacks."""
    try:
        name: str = types_pb2.DataType.Name(dtype)
    except ValueError:
        return str(dtype)
    return name


def tf_dtype(dtype: np.dtype[Any]) -> types_pb2.DataType:
    """The TensorFlow DataType of a numpy dtype; DT_INVALID for one TensorFlow has no name for."""
    entry = _BY_NUMPY.get(dtype)
    return entry.dtype if entry is not None else types_pb2.DT_INVALID


def _supported() -> str:
    return ", ".join(dtype_name(entry.dtype) for entry in _TYPES)


def decode_tensor(name: str, proto: tensor_pb2.TensorProto) -> npt.NDArray[Any]:
    """The array an input TensorProto describes, or an INVALID error naming what is wrong."""
    if proto.dtype == types_pb2.DT_INVALID:
        raise invalid(f"input {name}: dtype is not set")
    entry = _BY_DTYPE.get(proto.dtype)
    if entry is None:
        raise invalid(
            f"input {name}: dtype {dtype_name(proto.dtype)} is not supported here "
            f"(use {_supported()})"
        )
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {name}: tensor_shape has unknown_rank set; give its dimensions")
    shape = list(checked_shape([dim.size for dim in proto.tensor_shape.dim], entry.numpy, name))
    count = math.prod(shape)
    given = [field for field in _VALUE_FIELDS if len(getattr(proto, field))]
    if proto.tensor_content:
        if given:
            raise invalid(
                f"input {name}: values are in tensor_content and in {', '.join(given)}; "
                "send them in one place"
            )
        return _from_content(name, proto.tensor_content, shape, count, entry)
    return _from_values(name, proto, given, shape, count, entry)


def _from_content(
    name: str, content: bytes, shape: list[int], count: int, entry: TfType
) -> npt.NDArray[Any]:
    expected = count * entry.numpy.itemsize
    if len(content) != expected:
        raise invalid(
            f"input {name}: shape {shape} of {dtype_name(entry.dtype)} needs {expected} bytes "
            f"of tensor_content, got {len(content)}"
        )
    return np.frombuffer(content, dtype=entry.numpy).reshape(shape)


def _from_values(
    name: str,
    proto: tensor_pb2.TensorProto,
    given: list[str],
    shape: list[int],
    count: int,
    entry: TfType,
) -> npt.NDArray[Any]:
    field = entry.values_field
    misplaced = [other for other in given if other != field]
    if misplaced:
        raise invalid(
            f"input {name}: {dtype_name(entry.dtype)} values go in {field} or tensor_content, "
            f"not in {', '.join(misplaced)}"
        )
    values = getattr(proto, field)
    # Exactly one value per element: TensorFlow's fill-from-the-last-value shorthand is not
    # accepted, so a short list is reported instead of silently padded.
    if len(values) != count:
        raise invalid(
            f"input {name}: shape {shape} needs {count} values in {field}, got {len(values)}"
        )
    if field == "half_val":  # float16 bit patterns, one per int32
        return _narrowed(name, field, values, np.dtype(np.uint16)).view(np.float16).reshape(shape)
    if field == "int_val" and entry.numpy != np.int32:  # int_val also carries the narrow ints
        return _narrowed(name, field, values, entry.numpy).reshape(shape)
    return np.fromiter(values, dtype=entry.numpy, count=count).reshape(shape)


def _narrowed(name: str, field: str, values: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    wide = np.fromiter(values, dtype=np.int64, count=len(values))
    limits = np.iinfo(dtype)
    if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
        raise invalid(
            f"input {name}: {field} holds values outside {limits.min}..{limits.max}, the range "
            f"of {dtype}"
        )
    return wide.astype(dtype)


def fill_tensor(proto: tensor_pb2.TensorProto, array: npt.NDArray[Any]) -> None:
    """Write an output into ``proto`` (a message field, so nothing is copied twice)."""
    proto.dtype = tf_dtype(array.dtype)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_content = np.ascontiguousarray(array).tobytes()
