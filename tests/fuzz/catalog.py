"""What the server says it serves (its KServe metadata), the valid requests that follows
from it, and what a well-formed inference answer looks like."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.fuzz.known_valid import KSERVE_TO_NUMPY, kserve_outputs_from_json
from tests.fuzz.models import MODELS, Arrays
from tests.fuzz.properties import strict_json
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send

# Metadata shows a dynamic dimension as -1 without its bounds; valid requests stay within
# 1..4, inside every fuzz model's bounds (hostile ones go anywhere).
VALID_DYNAMIC_SIZES = st.integers(1, 4)
BINARY_HEADER = "inference-header-content-length"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[Any]:
        return KSERVE_TO_NUMPY[self.datatype]


@dataclass(frozen=True)
class ServedVersion:
    model: str
    version: int
    latest: bool
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]

    def output(self, name: str) -> TensorMeta:
        return next(meta for meta in self.outputs if meta.name == name)


def _tensors(items: list[dict[str, Any]]) -> tuple[TensorMeta, ...]:
    return tuple(TensorMeta(item["name"], item["datatype"], tuple(item["shape"])) for item in items)


def read_catalog(rest_port: int) -> tuple[ServedVersion, ...]:
    """Every version of every fuzz model, as its KServe v2 metadata describes it."""
    served: list[ServedVersion] = []
    for model in MODELS:
        for version in model.versions:
            target = f"/v2/models/{model.name}/versions/{version}"
            answer = send(rest_port, RawRequest("GET", target))
            assert answer is not None and answer.status == 200, (target, answer)
            metadata = strict_json(answer.body)
            served.append(
                ServedVersion(
                    model.name,
                    version,
                    version == model.latest,
                    _tensors(metadata["inputs"]),
                    _tensors(metadata["outputs"]),
                )
            )
    return tuple(served)


def valid_values(dtype: np.dtype[Any]) -> st.SearchStrategy[Any]:
    if dtype.kind == "f":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if dtype.kind == "b":
        return st.booleans()
    info = np.iinfo(dtype)
    return st.integers(int(info.min), int(info.max))


@st.composite
def valid_inputs(draw: st.DrawFn, served: ServedVersion) -> Arrays:
    """Inputs the version must accept: its metadata's shapes and types, any values."""
    inputs: Arrays = {}
    for meta in served.inputs:
        shape = tuple(draw(VALID_DYNAMIC_SIZES) if dim == -1 else dim for dim in meta.shape)
        inputs[meta.name] = draw(hnp.arrays(meta.dtype, shape, elements=valid_values(meta.dtype)))
    return inputs


def lenient_json(body: bytes) -> Any:
    """Inference answers may carry non-finite outputs (a model's arithmetic overflowing, which
    is no client error); the server writes them as NaN/Infinity, as TF-Serving's REST API does
    and as tritonclient's JSON reader accepts."""
    return json.loads(body)


def kserve_answer_outputs(answer: RawAnswer) -> tuple[dict[str, Any], Arrays]:
    """The JSON header and output arrays of a KServe v2 REST inference answer."""
    if BINARY_HEADER in answer.headers:
        length = int(answer.headers[BINARY_HEADER])
        assert 0 <= length <= len(answer.body), f"header length {length}"
        document = lenient_json(answer.body[:length])
        return document, kserve_outputs_from_json(document, answer.body[length:])
    assert answer.content_type == "application/json", answer.content_type
    document = lenient_json(answer.body)
    return document, kserve_outputs_from_json(document)


def check_outputs_match_metadata(served: ServedVersion, outputs: Arrays) -> None:
    assert outputs, "an inference answer without outputs"
    for name, array in outputs.items():
        meta = served.output(name)
        assert array.dtype == meta.dtype, f"output {name} is {array.dtype}, metadata {meta}"
        assert len(array.shape) == len(meta.shape) and all(
            want in (-1, got) for want, got in zip(meta.shape, array.shape, strict=True)
        ), f"output {name} has shape {array.shape}, metadata {meta.shape}"


def arrays_equal(got: Arrays, expected: Arrays) -> bool:
    return set(got) == set(expected) and all(
        got[name].dtype == array.dtype and np.array_equal(got[name], array, equal_nan=True)
        for name, array in expected.items()
    )
