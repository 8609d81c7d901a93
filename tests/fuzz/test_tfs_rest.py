"""TF-Serving REST predict, fuzzed: row (``instances``) and column (``inputs``) requests made
from each version's metadata and then mutated (values out of range or of the wrong type, ragged
or deep nesting, inputs missing or unknown, both formats or neither). Status and metadata
routes are in test_http_routes.py with the other GET routes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import fuzz
from tests.fuzz.catalog import ServedVersion, lenient_json, read_catalog, valid_inputs
from tests.fuzz.models import Arrays, Reference
from tests.fuzz.properties import PropertyViolationError, check_http
from tests.fuzz.rawhttp import RawAnswer, RawRequest, send
from tests.fuzz.sentinel import Sentinel
from tests.fuzz.strategies import (
    ODD_TEXT,
    content_framing,
    damaged,
    deep_nesting,
    encode_json,
    hostile_names,
    hostile_scalars,
    hostile_versions,
    json_values,
    out_of_range_integers,
    path_segment,
)
from tests.runtime.serving import RunningServer

pytestmark = pytest.mark.fuzz
Document = Any


@pytest.fixture(scope="module")
def catalog(server: RunningServer) -> tuple[ServedVersion, ...]:
    return read_catalog(server.rest_port)


def row_document(inputs: Arrays) -> Document:
    if len(inputs) == 1:
        return {"instances": next(iter(inputs.values())).tolist()}
    batch = next(iter(inputs.values())).shape[0]
    return {
        "instances": [
            {name: array[row].tolist() for name, array in inputs.items()} for row in range(batch)
        ]
    }


def column_document(inputs: Arrays, *, named: bool) -> Document:
    """Named: an object of inputs; else (a model of one input) that input's value."""
    if not named and len(inputs) == 1:
        return {"inputs": next(iter(inputs.values())).tolist()}
    return {"inputs": {name: array.tolist() for name, array in inputs.items()}}


def _leaf_holders(value: Any, found: list[tuple[Any, Any]]) -> None:
    """(container, key) for every leaf of nested lists and objects."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(item, list | dict) and item:
            _leaf_holders(item, found)
        else:
            found.append((value, key))


def hostile_leaf(draw: st.DrawFn, document: Document) -> None:
    holders: list[tuple[Any, Any]] = []
    body = document.get("instances", document.get("inputs"))
    if isinstance(body, list | dict):
        _leaf_holders(body, holders)
    for _ in range(draw(st.integers(1, 3))):
        if holders:
            container, key = draw(st.sampled_from(holders))
            container[key] = draw(st.one_of(out_of_range_integers(), hostile_scalars()))


def reshaped(draw: st.DrawFn, document: Document) -> None:
    key = "instances" if "instances" in document else "inputs"
    value = document.get(key)
    how = draw(st.sampled_from(["wrapped", "ragged", "deep", "first only", "empty", "scalar"]))
    if how == "wrapped":
        document[key] = [value]
    elif how == "ragged" and isinstance(value, list) and len(value) > 1:
        document[key] = [value[0], [value[1]]]
    elif how == "deep":
        document[key] = draw(deep_nesting())
    elif how == "first only" and isinstance(value, list) and value:
        document[key] = value[:1][0]
    elif how == "empty":
        document[key] = draw(st.sampled_from([[], {}, [[]], [{}]]))
    else:
        document[key] = draw(hostile_scalars())


def names_changed(draw: st.DrawFn, document: Document) -> None:
    """An input missing, unknown or renamed, in a row object or the column object."""
    value = document.get("instances", document.get("inputs"))
    objects: list[dict[str, Any]] = [value] if isinstance(value, dict) else []
    if isinstance(value, list):
        objects += [item for item in value if isinstance(item, dict)]
    if not objects:
        document["inputs"] = {draw(ODD_TEXT): draw(json_values())}
        return
    target: dict[str, Any] = draw(st.sampled_from(objects))
    drop = draw(st.booleans())
    if target and drop:
        target.pop(draw(st.sampled_from(sorted(target))))
    else:
        target[draw(ODD_TEXT)] = draw(json_values())


def formats_mixed(draw: st.DrawFn, document: Document) -> None:
    how = draw(st.sampled_from(["both", "neither", "signature", "root", "extra"]))
    if how == "both":
        document["inputs" if "instances" in document else "instances"] = draw(json_values())
    elif how == "neither":
        document.pop("instances", None)
        document.pop("inputs", None)
    elif how == "signature":
        document["signature_name"] = draw(json_values())
    elif how == "extra":
        document[draw(ODD_TEXT)] = draw(json_values())
    else:
        document.clear()
        document["\u0000root"] = draw(json_values())


MUTATIONS = (hostile_leaf, hostile_leaf, reshaped, names_changed, formats_mixed)


@st.composite
def predict_cases(
    draw: st.DrawFn, catalog: tuple[ServedVersion, ...]
) -> tuple[str, Document, ServedVersion | None, Arrays | None, bool]:
    served = draw(st.sampled_from(catalog))
    inputs = draw(valid_inputs(served))
    rows = draw(st.booleans())
    named = draw(st.booleans())
    document = row_document(inputs) if rows else column_document(inputs, named=named)
    style = draw(st.sampled_from(["latest", "versioned", "versioned", "hostile"]))
    addressed: ServedVersion | None = served
    if style == "latest":
        target = f"/v1/models/{served.model}:predict"
        addressed = served if served.latest else None
    elif style == "versioned":
        target = f"/v1/models/{served.model}/versions/{served.version}:predict"
    else:
        name = draw(path_segment(draw(hostile_names())))
        version = draw(path_segment(draw(hostile_versions())))
        target = f"/v1/models/{name}/versions/{version}:predict"
        addressed = None
    mutations = draw(st.lists(st.sampled_from(MUTATIONS), max_size=3))
    for mutate in mutations:
        mutate(draw, document)
    if draw(st.integers(0, 30)) == 0:
        document = draw(json_values())
        mutations.append(formats_mixed)
    valid = addressed is not None and not mutations
    return target, document, addressed, inputs if valid else None, rows


def same_json(got: Any, want: Any) -> bool:
    """Equal as documents, NaN equal to NaN (a model may compute one from finite inputs)."""
    return json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def predict_well_formed(answer: RawAnswer) -> None:
    document = lenient_json(answer.body)
    assert isinstance(document, dict), "answer is not an object"
    assert set(document) in ({"predictions"}, {"outputs"}), f"answer keys {sorted(document)}"


def expected_answer(reference: Reference, served: ServedVersion, inputs: Arrays, rows: bool) -> Any:
    outputs = reference.outputs(served.model, served.version, inputs)
    listed = {name: array.tolist() for name, array in outputs.items()}
    if len(listed) == 1:
        only = next(iter(listed.values()))
        return {"predictions": only} if rows else {"outputs": only}
    if not rows:
        return {"outputs": listed}
    batch = min(array.shape[0] for array in outputs.values())
    return {"predictions": [{name: v[i] for name, v in listed.items()} for i in range(batch)]}


@fuzz(share=0.10)
@given(data=st.data())
def test_predict_requests_get_a_client_error_or_the_right_answer(
    data: st.DataObject,
    server: RunningServer,
    reference: Reference,
    catalog: tuple[ServedVersion, ...],
    sentinel: Sentinel,
) -> None:
    target, document, served, inputs, rows = data.draw(predict_cases(catalog), label="case")
    body = encode_json(document)
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    if data.draw(st.integers(0, 5), label="damage?") == 0:
        body = data.draw(damaged(body), label="damaged")
        inputs = None
    breaks_http = False
    if data.draw(st.integers(0, 7), label="odd framing?") == 0:
        framing = data.draw(content_framing(body), label="framing")
        body, headers, breaks_http = framing.body, framing.headers, framing.breaks_http
        inputs = inputs if framing.same_document else None
    request = RawRequest("POST", target, body, headers, breaks_http=breaks_http)
    answer = send(server.rest_port, request)
    check_http(request, answer, predict_well_formed)
    if inputs is not None and served is not None:
        if answer is None or answer.status != 200:
            raise PropertyViolationError(f"a valid predict was refused: {request!r} -> {answer!r}")
        want = expected_answer(reference, served, inputs, rows)
        if not same_json(lenient_json(answer.body), want):
            raise PropertyViolationError(f"{request!r}: answered {answer.body!r}, expected {want}")
    sentinel.after_case()
