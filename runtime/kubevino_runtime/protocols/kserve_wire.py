"""ModelInferRequest taken apart without copying its tensors.

protobuf's parser copies each bytes field into the message, and reading one copies it again into
a new Python object; for ``raw_input_contents`` (the tensors, nearly all of a request) both
copies run while holding the GIL, which the server's single event loop needs for everything
else. Only the top level of the message is walked here: each ``raw_input_contents`` entry
becomes a view of the received buffer, and the remaining fields (a few hundred bytes) are parsed
by protobuf as before, so every other field keeps protobuf's own semantics.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kubevino_runtime.protocols import kserve_v2_pb2 as pb
from kubevino_runtime.protocols.grpc_common import MalformedRequest

RAW_INPUT_CONTENTS = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


@dataclass(frozen=True)
class InferRequestWire:
    """A ModelInferRequest whose ``raw_input_contents`` stay in the received buffer."""

    request: pb.ModelInferRequest
    raw_input_contents: list[memoryview]


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 7 * _MAX_VARINT_BYTES, 7):
        if position >= len(data):
            raise ValueError("message ends inside a varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise ValueError("varint longer than 10 bytes")


def _split(data: bytes) -> InferRequestWire:
    view = memoryview(data)
    others: list[memoryview] = []
    raw: list[memoryview] = []
    position, end = 0, len(data)
    while position < end:
        field_start = position
        key, position = _varint(data, position)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        value_start = position
        if wire_type == _VARINT:
            _, position = _varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, value_start = _varint(data, position)
            position = value_start + length
        else:
            raise ValueError(f"wire type {wire_type} of field {field}")
        if position > end:
            raise ValueError(f"field {field} runs past the end of the message")
        if field == RAW_INPUT_CONTENTS and wire_type == _LENGTH_DELIMITED:
            raw.append(view[value_start:position])
        else:
            others.append(view[field_start:position])
    rest = data if not raw else b"".join(others)
    return InferRequestWire(pb.ModelInferRequest.FromString(rest), raw)


def parse_infer_request(data: bytes) -> InferRequestWire | MalformedRequest:
    """gRPC's request deserializer for ModelInfer: never raises, so a malformed body reaches
    the handler and is answered INVALID_ARGUMENT rather than as a server fault."""
    try:
        return _split(data)
    except (ValueError, DecodeError) as error:
        return MalformedRequest(f"request is not a valid ModelInferRequest: {error}")
