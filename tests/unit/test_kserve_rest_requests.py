"""KServe v2 REST request fields other than tensors have the JSON types KServe defines, and
the binary extension's header length is a number of bytes within the body; anything else is a
client error naming the field, not an AttributeError or a crash in the server."""

from __future__ import annotations

from typing import Any

import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.protocols.kserve_rest import _decode_inputs, _request_id, _wanted_outputs
from kubevino_runtime.tensors import split_binary_body

X = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}


def refusal(call: Any, *args: Any) -> str:
    with pytest.raises(ServingError) as caught:
        call(*args)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


@pytest.mark.parametrize(
    ("item", "payload", "message"),
    [
        ({**X, "parameters": [1]}, b"", "input x: 'parameters' must be an object"),
        ({**X, "parameters": "binary"}, b"", "input x: 'parameters' must be an object"),
        (
            {**X, "parameters": {"binary_data_size": True}},
            b"\0",
            "binary_data_size must be a number of bytes",
        ),
        (
            {**X, "parameters": {"binary_data_size": -8}},
            b"",
            "binary_data_size must be a number of bytes",
        ),
        (
            {**X, "parameters": {"binary_data_size": 9}},
            b"\0" * 8,
            "binary_data_size 9 runs past the 8 bytes",
        ),
        ({**X, "shape": [2**62, 4]}, b"", "more than any tensor can hold"),
    ],
)
def test_input_fields_of_the_wrong_type_are_named(
    item: dict[str, Any], payload: bytes, message: str
) -> None:
    assert message in refusal(_decode_inputs, {"inputs": [item]}, memoryview(payload))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"parameters": [1]}, "request: 'parameters' must be an object"),
        ({"parameters": {"binary_data_output": "yes"}}, "binary_data_output must be true or"),
        ({"outputs": 5}, "'outputs' must be an array"),
        ({"outputs": {"name": "y"}}, "'outputs' must be an array"),
        ({"outputs": ["y"]}, "outputs[0] must be an object with a 'name'"),
        ({"outputs": [{"name": 7}]}, "outputs[0] must be an object with a 'name'"),
        ({"outputs": [{"name": "z"}]}, "model has no output 'z'; its outputs are y"),
        ({"outputs": [{"name": "y", "parameters": 3}]}, "output y: 'parameters' must be an"),
        (
            {"outputs": [{"name": "y", "parameters": {"binary_data": 1}}]},
            "output y: parameters.binary_data must be true or false",
        ),
    ],
)
def test_output_requests_of_the_wrong_type_are_named(header: dict[str, Any], message: str) -> None:
    assert message in refusal(_wanted_outputs, header, ["y"])


def test_outputs_default_to_all_in_the_requested_encoding() -> None:
    assert _wanted_outputs({}, ["y", "z"]) == [("y", False), ("z", False)]
    binary = {"parameters": {"binary_data_output": True}, "outputs": []}
    assert _wanted_outputs(binary, ["y"]) == [("y", True)]
    chosen = {"outputs": [{"name": "z", "parameters": {"binary_data": True}}]}
    assert _wanted_outputs(chosen, ["y", "z"]) == [("z", True)]


@pytest.mark.parametrize("request_id", [7, ["r"], {"r": 1}, float("inf"), True])
def test_the_request_id_echoed_back_is_a_string(request_id: Any) -> None:
    assert "'id' must be a string" in refusal(_request_id, {"id": request_id})
    assert _request_id({"id": "r-1"}) == "r-1"
    assert _request_id({}) is None


@pytest.mark.parametrize(
    ("length", "message"),
    [
        ("-1", "must be a number of bytes"),
        ("+2", "must be a number of bytes"),
        ("1_0", "must be a number of bytes"),
        ("\u0663", "must be a number of bytes"),  # ARABIC-INDIC DIGIT THREE: int() takes it
        ("x", "must be a number of bytes"),
        ("3", "is more than the body's 2 bytes"),
        ("9" * 5000, "is more than the body's 2 bytes"),
    ],
)
def test_the_binary_header_length_is_digits_within_the_body(length: str, message: str) -> None:
    assert message in refusal(split_binary_body, b"{}", length)


def test_the_binary_header_length_splits_header_and_payload() -> None:
    parsed = split_binary_body(b'{"inputs": []}\x01\x02', "14")
    assert parsed.header == {"inputs": []}
    assert bytes(parsed.payload) == b"\x01\x02"
