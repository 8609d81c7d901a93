"""Request bodies are JSON as RFC 8259 defines it, nested no deeper than any tensor needs;
anything else is refused with the reason, before Python's parser could recurse out of stack."""

from __future__ import annotations

import json

import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.jsonbody import MAX_JSON_DEPTH, nesting_depth, parse_json_body
from kubevino_runtime.tensors import MAX_RANK


def refusal(body: bytes) -> str:
    with pytest.raises(ServingError) as caught:
        parse_json_body(body)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"[" * 60 + b"]" * 60, 60),
        (b'{"a":' * 45 + b"0" + b"}" * 45, 45),
        # brackets inside strings do not nest, an escaped quote does not end its string
        (b'["' + b"[" * 100 + b'"]', 1),
        (b'[["' + b"[" * 100 + b'\\"[[[", ' + b"[" * 50 + b"]" * 50 + b"]]", 52),
    ],
)
def test_nesting_depth_counts_arrays_and_objects_outside_strings(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_shallow_text_is_measured_by_counting_openers_alone() -> None:
    # an upper bound, exact enough: within the limit either way
    assert nesting_depth(b'{"a": [[1], [2]], "b": {}}') <= MAX_JSON_DEPTH


def test_every_tensor_rank_fits_in_the_deepest_envelope() -> None:
    tensor: object = 1.0
    for _ in range(MAX_RANK):
        tensor = [tensor]
    tf_serving_row = json.dumps({"instances": [{"input": tensor}]}).encode()
    assert parse_json_body(tf_serving_row)["instances"][0]["input"] == tensor


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 200_000])
def test_deeper_nesting_is_refused_without_recursing(depth: int) -> None:
    message = refusal(b"[" * depth + b"]" * depth)
    assert f"nests arrays and objects {depth} deep; at most {MAX_JSON_DEPTH}" in message
    objects = b'{"a":' * depth + b"0" + b"}" * depth
    assert f"{depth} deep" in refusal(objects)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_literals_are_not_json(literal: bytes) -> None:
    message = refusal(b'{"data": [1.0, ' + literal + b"]}")
    assert "not valid JSON" in message and literal.decode().lstrip("-") in message


def test_malformed_and_undecodable_bodies_are_refused_with_the_parsers_reason() -> None:
    assert "not valid JSON: Expecting" in refusal(b'{"inputs": [')
    assert "not valid JSON" in refusal(b'{"a": "\xff\xfe"}')
    assert "not valid JSON" in refusal(b"")


def test_utf16_bodies_are_json_too() -> None:
    assert parse_json_body('{"a": [1]}'.encode("utf-16")) == {"a": [1]}
