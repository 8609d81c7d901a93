"""Tensor codecs shared by the protocols: KServe datatypes, JSON data, the binary extension."""

from __future__ import annotations

from collections.abc import Sequence
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


def element_count(shape: Sequence[int], tensor: str) -> int:
    if any(dim < 0 for dim in shape):
        raise invalid(f"input {tensor}: shape {list(shape)} has a negative dimension")
    return int(np.prod(shape, dtype=np.int64))


def from_json_data(
    data: Any, shape: Sequence[int], dtype: np.dtype[Any], tensor: str
) -> npt.NDArray[Any]:
    """A JSON ``data`` field (flat or nested) as an array of ``shape``."""
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise invalid(f"input {tensor}: data does not fit datatype {dtype}: {error}") from None
    expected = element_count(shape, tensor)
    if array.size != expected:
        raise invalid(
            f"input {tensor}: shape {list(shape)} needs {expected} values, data has {array.size}"
        )
    return array.reshape(shape)


def from_raw(
    raw: bytes | memoryview, shape: Sequence[int], dtype: np.dtype[Any], tensor: str
) -> npt.NDArray[Any]:
    expected = element_count(shape, tensor) * dtype.itemsize
    if len(raw) != expected:
        raise invalid(
            f"input {tensor}: shape {list(shape)} of {NUMPY_TO_KSERVE.get(dtype, dtype)} needs "
            f"{expected} bytes, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


@dataclass(frozen=True)
class BinaryBody:
    header: dict[str, Any]
    payload: memoryview


def split_binary_body(body: bytes, header_length: str | None) -> BinaryBody:
    """Split a request body per KServe's binary tensor extension (JSON header + raw bytes)."""
    if header_length is None:
        length = len(body)
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise invalid(f"{BINARY_HEADER} must be an integer, got {header_length!r}") from None
        if not 0 <= length <= len(body):
            raise invalid(f"{BINARY_HEADER} {length} is outside the body of {len(body)} bytes")
    header = parse_json_body(
        bytes(body[:length]), "request body" if header_length is None else "the JSON header"
    )
    if not isinstance(header, dict):
        raise invalid("request body must be a JSON object")
    return BinaryBody(header, memoryview(body)[length:])


def json_ready(array: npt.NDArray[Any]) -> list[Any]:
    flat: list[Any] = array.reshape(-1).tolist()
    return flat
