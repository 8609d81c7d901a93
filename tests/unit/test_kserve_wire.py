"""ModelInfer requests are split at the top level only: tensors stay views of the received
buffer, every other field is exactly what protobuf parses, and a broken body is named."""

from __future__ import annotations

import numpy as np
import pytest

from kubevino_runtime.protocols import kserve_v2_pb2 as pb
from kubevino_runtime.protocols.grpc_common import MalformedRequest
from kubevino_runtime.protocols.kserve_wire import InferRequestWire, parse_infer_request


def _request(*tensors: bytes) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="classifier", model_version="2", id="r-1")
    request.parameters["priority"].int64_param = 3
    for index, raw in enumerate(tensors):
        request.inputs.add(name=f"input{index}", datatype="UINT8", shape=[len(raw)])
        request.raw_input_contents.append(raw)
    request.outputs.add(name="logits")
    return request


def _parsed(data: bytes) -> InferRequestWire:
    parsed = parse_infer_request(data)
    assert isinstance(parsed, InferRequestWire), parsed
    return parsed


def test_every_field_but_the_tensors_is_what_protobuf_parses() -> None:
    original = _request(b"\x01\x02\x03", bytes(range(200)))
    parsed = _parsed(original.SerializeToString())
    without_tensors = pb.ModelInferRequest()
    without_tensors.CopyFrom(original)
    del without_tensors.raw_input_contents[:]
    assert parsed.request == without_tensors
    assert [bytes(raw) for raw in parsed.raw_input_contents] == list(original.raw_input_contents)


def test_tensors_are_views_of_the_received_buffer_not_copies() -> None:
    data = _request(np.arange(1000, dtype=np.float32).tobytes()).SerializeToString()
    raw = _parsed(data).raw_input_contents[0]
    assert raw.obj is data
    assert np.array_equal(np.frombuffer(raw, np.float32), np.arange(1000, dtype=np.float32))


def test_empty_tensors_and_requests_without_raw_contents_keep_their_fields() -> None:
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="x", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1, 2])
    parsed = _parsed(typed.SerializeToString())
    assert parsed.request == typed and parsed.raw_input_contents == []
    empty = _parsed(_request(b"").SerializeToString())
    assert [bytes(raw) for raw in empty.raw_input_contents] == [b""]


def test_fields_unknown_to_this_server_pass_through_to_protobuf() -> None:
    unknown_varint_field = bytes([(15 << 3) | 0, 0x96, 0x01])
    data = unknown_varint_field + _request(b"\x07").SerializeToString()
    parsed = _parsed(data)
    assert parsed.request.model_name == "classifier"
    assert [bytes(raw) for raw in parsed.raw_input_contents] == [b"\x07"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([(7 << 3) | 2, 50]) + b"short", "runs past the end"),
        (bytes([(1 << 3) | 0, 0xFF]), "ends inside a varint"),
        (bytes([(1 << 3) | 0]) + b"\xff" * 11, "longer than 10 bytes"),
        (bytes([(5 << 3) | 3]), "wire type 3"),
        (bytes([0x00, 0x01]), "field number 0"),
        (bytes([(1 << 3) | 2, 2]) + b"\xff\xfe", "ModelInferRequest"),
    ],
)
def test_a_body_that_is_not_a_model_infer_request_is_named(data: bytes, reason: str) -> None:
    parsed = parse_infer_request(data)
    assert isinstance(parsed, MalformedRequest)
    assert reason in parsed.reason
    assert parsed.reason.startswith("request is not a valid ModelInferRequest")
