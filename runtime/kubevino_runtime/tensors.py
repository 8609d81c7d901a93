"""Tensor codecs shared by the protocols: KServe datatypes, JSON data, the binary extension."""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubevino_runtime.errors import invalid
from kubevino_runtime.jsonbody import parse_json_body

KSERVE_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_KSERVE = {dtype: name for name, dtype in KSERVE_TO_NUMPY.items()}
BINARY_HEADER = "Inference-Header-Content-Length"
_DECIMAL = re.compile("[0-9]+")
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlong = 3, 6, 4, 40


def kserve_datatype(dtype: np.dtype[Any]) -> str:
    try:
        return NUMPY_TO_KSERVE[dtype]
    except KeyError:
        raise invalid(f"tensor type {dtype} has no KServe datatype") from None


def numpy_dtype(datatype: str, tensor: str) -> np.dtype[Any]:
    try:
        return KSERVE_TO_NUMPY[datatype]
    except KeyError:
        known = ", ".join(KSERVE_TO_NUMPY)
        raise invalid(f"input {tensor}: unsupported datatype {datatype!r} (use {known})") from None


# No served model has more dimensions; numpy itself stops at 64.
MAX_RANK = 32
# The largest tensor numpy and OpenVINO can address, in bytes (2**63 - 1 on 64-bit hosts).
MAX_TENSOR_BYTES = int(np.iinfo(np.intp).max)


def checked_shape(shape: Any, dtype: np.dtype[Any], tensor: str) -> tuple[int, ...]:
    """``shape`` as dimensions a tensor of ``dtype`` can have, checked before anything is
    allocated or reshaped: integers (not booleans), not negative, at most MAX_RANK of them, and
    describing at most MAX_TENSOR_BYTES (products in Python integers, which cannot overflow).
    Zero dimensions count as one for the size, as numpy counts them when it reshapes."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) for dim in shape
    ):
        raise invalid(f"input {tensor}: 'shape' must be a list of integers, got {_brief(shape)}")
    dims = tuple(int(dim) for dim in shape)
    if len(dims) > MAX_RANK:
        raise invalid(
            f"input {tensor}: shape has {len(dims)} dimensions, more than the {MAX_RANK} accepted"
        )
    if any(dim < 0 for dim in dims):
        raise invalid(f"input {tensor}: shape {list(dims)} has a negative dimension")
    nominal_bytes = math.prod(max(dim, 1) for dim in dims) * dtype.itemsize
    if nominal_bytes > MAX_TENSOR_BYTES:
        raise invalid(
            f"input {tensor}: shape {list(dims)} of {_datatype(dtype)} describes more than "
            f"{MAX_TENSOR_BYTES} bytes, more than any tensor can hold"
        )
    return dims


def from_json_data(data: Any, shape: Any, dtype: np.dtype[Any], tensor: str) -> npt.NDArray[Any]:
    """A JSON ``data`` field (flat or nested) as an array of ``shape``."""
    dims = checked_shape(shape, dtype, tensor)
    array = json_array(data, dtype, tensor)
    return _reshaped(array, dims, tensor)


def from_typed_contents(
    values: Sequence[Any], shape: Any, dtype: np.dtype[Any], tensor: str
) -> npt.NDArray[Any]:
    """gRPC's typed contents (``fp32_contents``, ``uint_contents``, …) as an array of ``shape``.

    Each contents field is wider than the smallest datatypes it carries (uint_contents holds
    UINT8 as uint32), so values are range-checked like JSON numbers; its floats may be NaN or
    infinite, which protobuf, unlike JSON, can carry."""
    dims = checked_shape(shape, dtype, tensor)
    array = _converted(np.asarray(values), dtype, tensor, finite_source=False)
    return _reshaped(array, dims, tensor)


def json_array(data: Any, dtype: np.dtype[Any], tensor: str) -> npt.NDArray[Any]:
    """JSON values (nested lists of numbers or booleans) as an array of ``dtype``, shaped as
    they nest. Refused rather than converted when numpy would change them: integers out of
    the datatype's range (numpy raises OverflowError or wraps), numbers a float type cannot
    hold (they become infinite), fractions for integers (truncated), null (NaN), strings."""
    try:
        values = np.asarray(data)
    except ValueError as error:
        raise invalid(f"input {tensor}: data is not a regular array of numbers: {error}") from None
    return _converted(values, dtype, tensor, finite_source=True)


def _reshaped(array: npt.NDArray[Any], dims: tuple[int, ...], tensor: str) -> npt.NDArray[Any]:
    expected = math.prod(dims)
    if array.size != expected:
        raise invalid(
            f"input {tensor}: shape {list(dims)} needs {expected} values, data has {array.size}"
        )
    return array.reshape(dims)


def _converted(
    values: npt.NDArray[Any], dtype: np.dtype[Any], tensor: str, *, finite_source: bool
) -> npt.NDArray[Any]:
    """``values`` (as numpy read them) in ``dtype``, or a client error naming the first value
    that does not fit. ``finite_source``: the values come from JSON, where a non-finite float
    can only be a literal too large for a double (``1e999``)."""
    if values.size == 0:
        return values.astype(dtype)  # no value to misfit, whatever type numpy guessed
    kind = values.dtype.kind
    name = _datatype(dtype)
    if dtype.kind == "b":
        if kind != "b":
            found = _first_unlike(values, _is_bool)
            raise invalid(f"input {tensor}: {name} takes true or false, data holds {found}")
        return values.astype(dtype)
    if dtype.kind in "iu":
        return _as_integers(values, dtype, tensor)
    if kind in "iuf":
        wide = values.astype(np.float64)
    elif kind == "O":
        wide = _objects_as_floats(values, name, tensor)
    else:
        raise invalid(
            f"input {tensor}: {name} takes numbers, data holds {_first_unlike(values, _is_number)}"
        )
    if finite_source and not np.isfinite(wide).all():
        raise invalid(
            f"input {tensor}: data holds a number beyond a 64-bit float's range "
            f"({_first(values, ~np.isfinite(wide))})"
        )
    with np.errstate(over="ignore"):
        narrowed = wide.astype(dtype)
    overflowed = np.isfinite(wide) & ~np.isfinite(narrowed)
    if overflowed.any():
        largest = float(np.finfo(dtype).max)
        raise invalid(
            f"input {tensor}: {_first(values, overflowed)} is outside {name}'s range "
            f"(±{largest:.7g})"
        )
    return narrowed


def _as_integers(values: npt.NDArray[Any], dtype: np.dtype[Any], tensor: str) -> npt.NDArray[Any]:
    name = _datatype(dtype)
    info = np.iinfo(dtype)
    low, high = int(info.min), int(info.max)
    kind = values.dtype.kind
    if kind == "O":  # integers beyond 64 bits, or values that are no numbers at all
        for value in values.reshape(-1):
            if not _is_integer(value):
                raise invalid(f"input {tensor}: {name} takes integers, data holds {_brief(value)}")
            if not low <= value <= high:
                raise invalid(f"input {tensor}: {value} is outside {name}'s range {low}..{high}")
        return values.astype(dtype)
    if kind not in "iu":
        found = _first_unlike(values, _is_integer)
        raise invalid(f"input {tensor}: {name} takes integers, data holds {found}")
    outside = (values < low) | (values > high)
    if outside.any():
        raise invalid(
            f"input {tensor}: {_first(values, outside)} is outside {name}'s range {low}..{high}"
        )
    return values.astype(dtype)


def _objects_as_floats(values: npt.NDArray[Any], name: str, tensor: str) -> npt.NDArray[Any]:
    """Mixed JSON values numpy kept as objects: integers beyond 64 bits are numbers still."""
    converted = np.empty(values.shape, dtype=np.float64)
    flat = converted.reshape(-1)
    for index, value in enumerate(values.reshape(-1)):
        if not _is_number(value):
            raise invalid(f"input {tensor}: {name} takes numbers, data holds {_brief(value)}")
        try:
            flat[index] = float(value)
        except OverflowError:
            raise invalid(f"input {tensor}: {value} is outside {name}'s range") from None
    return converted


def _first(values: npt.NDArray[Any], where: npt.NDArray[np.bool_]) -> str:
    """The first value where ``where`` holds. An object array (numbers of mixed kinds, say an
    integer beyond 64 bits beside a float) holds Python numbers, not numpy scalars."""
    value = values.reshape(-1)[int(np.argmax(where.reshape(-1)))]
    return _brief(value.item() if isinstance(value, np.generic) else value)


def _first_unlike(values: npt.NDArray[Any], accepted: Callable[[Any], bool]) -> str:
    """The first value that is not ``accepted``, for the message (numpy may have turned the
    values into a common type; ``tolist`` gives back the Python values)."""
    flat: list[Any] = values.reshape(-1).tolist()
    return _brief(next((value for value in flat if not accepted(value)), flat[0]))


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _brief(value: Any) -> str:
    """A value for a message, in JSON's words where they differ from Python's, and short
    however large the value is."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:40] + "…")
    return _SHORT.repr(value)


def _datatype(dtype: np.dtype[Any]) -> str:
    return NUMPY_TO_KSERVE.get(dtype, str(dtype))


def from_raw(
    raw: bytes | memoryview, shape: Any, dtype: np.dtype[Any], tensor: str
) -> npt.NDArray[Any]:
    dims = checked_shape(shape, dtype, tensor)
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise invalid(
            f"input {tensor}: shape {list(dims)} of {_datatype(dtype)} needs "
            f"{expected} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


@dataclass(frozen=True)
class BinaryBody:
    header: dict[str, Any]
    payload: memoryview


def split_binary_body(body: bytes, header_length: str | None) -> BinaryBody:
    """Split a request body per KServe's binary tensor extension (JSON header + raw bytes)."""
    if header_length is None:
        length = len(body)
    else:
        # Digits only: int() would also take "-1", "+5", "1_0" and non-ASCII digits.
        if not _DECIMAL.fullmatch(header_length):
            raise invalid(f"{BINARY_HEADER} must be a number of bytes, got {_brief(header_length)}")
        # A length with more digits than the body has bytes is past its end (and int() of
        # thousands of digits is slow or refused).
        length = int(header_length) if len(header_length) <= 20 else len(body) + 1
        if length > len(body):
            raise invalid(
                f"{BINARY_HEADER} {_brief(header_length)} is more than the body's {len(body)} bytes"
            )
    header = parse_json_body(
        bytes(body[:length]), "request body" if header_length is None else "the JSON header"
    )
    if not isinstance(header, dict):
        raise invalid("request body must be a JSON object")
    return BinaryBody(header, memoryview(body)[length:])


def json_ready(array: npt.NDArray[Any]) -> list[Any]:
    flat: list[Any] = array.reshape(-1).tolist()
    return flat
