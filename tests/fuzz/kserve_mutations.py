"""KServe v2 inference requests (REST JSON, the binary extension) built from a version's
metadata, then mutated: the shared part of the KServe REST cases."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.fuzz.catalog import ServedVersion, valid_inputs
from tests.fuzz.models import Arrays
from tests.fuzz.strategies import (
    KSERVE_DATATYPES,
    ODD_TEXT,
    deep_nesting,
    hostile_names,
    hostile_scalars,
    hostile_versions,
    json_values,
    out_of_range_integers,
    path_segment,
)

Document = dict[str, Any]
Mutation = Callable[[st.DrawFn, Document, ServedVersion], None]
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class Route:
    target: str
    # The version the route resolves to when name and version are both right, else None.
    served: ServedVersion | None


@st.composite
def infer_routes(draw: st.DrawFn, catalog: tuple[ServedVersion, ...], suffix: str) -> Route:
    served = draw(st.sampled_from(catalog))
    style = draw(st.sampled_from(["latest", "versioned", "versioned", "hostile"]))
    if style == "latest":
        target = f"/v2/models/{served.model}{suffix}"
        return Route(target, served if served.latest else None)
    if style == "versioned":
        return Route(f"/v2/models/{served.model}/versions/{served.version}{suffix}", served)
    name = draw(path_segment(draw(hostile_names())))
    versioned = draw(st.booleans())
    version = draw(path_segment(draw(hostile_versions())))
    middle = f"/versions/{version}" if versioned else ""
    return Route(f"/v2/models/{name}{middle}{suffix}", None)


# --- shapes ---------------------------------------------------------------------------------


def hostile_shapes() -> st.SearchStrategy[Any]:
    huge = st.sampled_from([2**31, 2**32, MAX_INT64, 2**63, 2**64, 10**30, -1, -(2**63), 3 * 2**61])
    dims = st.one_of(st.integers(-3, 10), huge)
    return st.one_of(
        st.lists(dims, max_size=8),
        # element counts that overflow 64 bits while every dimension fits
        st.sampled_from(
            [[2**32, 2**32], [2**62, 4], [MAX_INT64, MAX_INT64], [2**31] * 3, [0, 2**62, 4]]
        ),
        st.integers(30, 100).map(lambda rank: [1] * rank),  # more dimensions than numpy has
        st.lists(st.one_of(st.floats(), st.text(max_size=3), st.booleans(), st.none())),
        hostile_scalars(),
    )


# --- one input's mutations ------------------------------------------------------------------


def _pick_input(draw: st.DrawFn, document: Document) -> dict[str, Any] | None:
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs or not isinstance(inputs[0], dict):
        return None
    chosen = inputs[draw(st.integers(0, len(inputs) - 1))]
    return chosen if isinstance(chosen, dict) else None


def wrong_shape(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    if (item := _pick_input(draw, document)) is not None:
        item["shape"] = draw(hostile_shapes())


def zero_elements(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    """A shape with a zero dimension (so no values) whose other dimensions may be huge."""
    if (item := _pick_input(draw, document)) is not None:
        others = draw(st.lists(st.sampled_from([0, 1, 3, 2**31, 2**62, MAX_INT64]), max_size=3))
        at = draw(st.integers(0, len(others)))
        item["shape"] = [*others[:at], 0, *others[at:]]
        item["data"] = []


def wrong_datatype(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    if (item := _pick_input(draw, document)) is not None:
        item["datatype"] = draw(
            st.one_of(
                st.sampled_from(KSERVE_DATATYPES),
                st.sampled_from(["fp32", "FLOAT", "TYPE_FP32", "INT128", ""]),
                hostile_scalars(),
            )
        )


def hostile_values(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    """Some values replaced: out of the datatype's range, of the wrong JSON type, not JSON."""
    item = _pick_input(draw, document)
    if item is None or not isinstance(item.get("data"), list) or not item["data"]:
        return
    data = item["data"]
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, len(data) - 1))] = draw(
            st.one_of(out_of_range_integers(), hostile_scalars())
        )


def badly_shaped_data(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    item = _pick_input(draw, document)
    if item is None or not isinstance(item.get("data"), list):
        return
    data: list[Any] = item["data"]
    how = draw(
        st.sampled_from(["fewer", "more", "nested", "ragged", "deep", "scalar", "any", "wrapped"])
    )
    if how == "fewer":
        item["data"] = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif how == "more":
        item["data"] = data + data[:1] * draw(st.integers(1, 3)) if data else [0]
    elif how == "nested" and isinstance(item.get("shape"), list) and item["shape"]:
        # KServe allows data nested as the shape; a valid request stays valid.
        with contextlib.suppress(ValueError):
            item["data"] = np.asarray(data).reshape(item["shape"]).tolist()
    elif how == "ragged" and len(data) > 1:
        item["data"] = [data[:1], data[1:]]
    elif how == "deep":
        item["data"] = draw(deep_nesting())
    elif how == "scalar":
        item["data"] = data[0] if data else 0
    elif how == "wrapped":
        item["data"] = [data]
    else:
        item["data"] = draw(json_values())


def wrong_name(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    if (item := _pick_input(draw, document)) is not None:
        others = [meta.name for meta in served.inputs]
        item["name"] = draw(st.one_of(st.sampled_from(others), ODD_TEXT, hostile_scalars()))


def missing_key(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    if (item := _pick_input(draw, document)) is not None:
        item.pop(draw(st.sampled_from(["name", "shape", "datatype", "data"])), None)


def extra_key(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    target = _pick_input(draw, document) if draw(st.booleans()) else document
    if target is not None:
        target[draw(ODD_TEXT)] = draw(json_values())


def input_parameters(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    if (item := _pick_input(draw, document)) is not None:
        item["parameters"] = draw(
            st.one_of(
                json_values(),
                st.fixed_dictionaries({"binary_data_size": hostile_scalars()}),
                st.fixed_dictionaries({"binary_data_size": st.integers(-5, 10**20)}),
                st.just({"content_type": "str"}),
            )
        )


# --- the document's mutations ---------------------------------------------------------------


def hostile_inputs(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    how = draw(st.sampled_from(["empty", "missing", "not a list", "twice", "unknown", "junk"]))
    inputs = document.get("inputs")
    if how == "empty":
        document["inputs"] = []
    elif how == "missing":
        document.pop("inputs", None)
    elif how == "not a list":
        document["inputs"] = draw(st.one_of(hostile_scalars(), st.just({"name": "x"})))
    elif how == "twice" and isinstance(inputs, list) and inputs:
        inputs.append(json.loads(json.dumps(inputs[0], default=str)))
    elif how == "unknown" and isinstance(inputs, list):
        inputs.append({"name": draw(ODD_TEXT), "shape": [1], "datatype": "FP32", "data": [0]})
    elif isinstance(inputs, list):
        inputs.append(draw(json_values()))


def hostile_outputs(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    names = [meta.name for meta in served.outputs]
    entry = st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(names), ODD_TEXT, hostile_scalars())},
        optional={
            "parameters": st.one_of(
                st.fixed_dictionaries({"binary_data": st.one_of(st.booleans(), json_values())}),
                json_values(),
            )
        },
    )
    document["outputs"] = draw(
        st.one_of(st.lists(st.one_of(entry, json_values()), max_size=3), json_values())
    )


def hostile_id(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    document["id"] = draw(st.one_of(json_values(), ODD_TEXT, st.just("r" * 100_000)))


def hostile_parameters(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    document["parameters"] = draw(
        st.one_of(
            json_values(),
            st.fixed_dictionaries({"binary_data_output": json_values()}),
        )
    )


def deep_anywhere(draw: st.DrawFn, document: Document, served: ServedVersion) -> None:
    where = draw(st.sampled_from(["id", "parameters", "extra", "data", "shape", "outputs"]))
    nested = draw(deep_nesting())
    item = _pick_input(draw, document)
    if where in ("data", "shape") and item is not None:
        item[where] = nested
    else:
        document[where] = nested


INPUT_MUTATIONS: tuple[Mutation, ...] = (
    wrong_shape,
    zero_elements,
    wrong_datatype,
    hostile_values,
    hostile_values,
    badly_shaped_data,
    wrong_name,
    missing_key,
    extra_key,
    input_parameters,
)
DOCUMENT_MUTATIONS: tuple[Mutation, ...] = (
    hostile_inputs,
    hostile_outputs,
    hostile_id,
    hostile_parameters,
    deep_anywhere,
)


def json_document(served: ServedVersion, inputs: Arrays) -> Document:
    return {
        "inputs": [
            {
                "name": meta.name,
                "shape": list(inputs[meta.name].shape),
                "datatype": meta.datatype,
                "data": inputs[meta.name].reshape(-1).tolist(),
            }
            for meta in served.inputs
        ]
    }


@dataclass(frozen=True)
class InferCase:
    route: Route
    document: Any  # what the JSON (header) says, RawJson splices included
    payload: bytes  # after the JSON header (binary extension)
    # The request is valid and must be answered with these inputs' results.
    expected_inputs: Arrays | None

    def without_expectation(self) -> InferCase:
        return replace(self, expected_inputs=None)


@st.composite
def json_infer_cases(draw: st.DrawFn, catalog: tuple[ServedVersion, ...]) -> InferCase:
    route = draw(infer_routes(catalog, "/infer"))
    served = route.served or draw(st.sampled_from(catalog))
    inputs = draw(valid_inputs(served))
    document: Any = json_document(served, inputs)
    mutations = draw(
        st.lists(st.sampled_from(INPUT_MUTATIONS + DOCUMENT_MUTATIONS), min_size=0, max_size=3)
    )
    for mutation in mutations:
        mutation(draw, document, served)
    if draw(st.integers(0, 30)) == 0:
        document = draw(json_values())  # the root is anything at all
        mutations.append(hostile_inputs)
    valid = route.served is not None and not mutations
    return InferCase(route, document, b"", inputs if valid else None)


# --- the binary tensor extension ------------------------------------------------------------


@st.composite
def binary_infer_cases(draw: st.DrawFn, catalog: tuple[ServedVersion, ...]) -> InferCase:
    """Some or all inputs as raw bytes after the JSON header, sizes right or wrong."""
    route = draw(infer_routes(catalog, "/infer"))
    served = route.served or draw(st.sampled_from(catalog))
    inputs = draw(valid_inputs(served))
    document = json_document(served, inputs)
    chunks: list[bytes] = []
    broken = False
    for item, meta in zip(document["inputs"], served.inputs, strict=True):
        if not draw(st.integers(0, 3)):
            continue  # this one stays JSON
        raw = inputs[meta.name].tobytes()
        del item["data"]
        size: Any = len(raw)
        how = draw(
            st.sampled_from(["right", "right", "right", "size", "bytes", "dtype", "shape", "junk"])
        )
        if how == "size":
            size = draw(
                st.one_of(
                    st.integers(-(2**64), 2**64),
                    st.sampled_from([len(raw) - 1, len(raw) + 1, 0, -1, 2**63]),
                    hostile_scalars(),
                )
            )
        elif how == "bytes":
            raw = draw(st.binary(max_size=2 * len(raw) + 8))
            size = len(raw) if draw(st.booleans()) else size
        elif how == "dtype":
            item["datatype"] = draw(st.sampled_from(KSERVE_DATATYPES))
        elif how == "shape":
            item["shape"] = draw(hostile_shapes())
        elif how == "junk":
            item["parameters"] = draw(json_values())
            item["data"] = draw(json_values())
        broken = broken or how != "right"
        item["parameters"] = item.get("parameters", {"binary_data_size": size})
        chunks.append(raw)
    if draw(st.booleans()):
        document["parameters"] = {"binary_data_output": True}
    payload = b"".join(chunks)
    if draw(st.integers(0, 4)) == 0:
        payload = payload[: draw(st.integers(0, len(payload)))] + draw(st.binary(max_size=16))
        broken = True
    valid = route.served is not None and not broken and bool(chunks)
    return InferCase(route, document, payload, inputs if valid else None)


def header_length_values(right: int) -> st.SearchStrategy[str | None]:
    """Inference-Header-Content-Length: right, off by some, huge, negative, not a number."""
    return st.one_of(
        st.just(str(right)),
        st.integers(-2 * right - 10, 2 * right + 10).map(str),
        st.sampled_from(
            [str(2**63), str(2**64), "9" * 5000, "-1", "+5", " 5", "5.0", "1e3", "", "x", "٣"]
        ),
        st.none(),
    )
