"""KServe gRPC decoding: a body that is not the method's message is INVALID_ARGUMENT for every
method (gRPC answers a deserializer's exception UNKNOWN), and typed contents and raw bytes are
held to the datatype and shape like REST's."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from kubevino_runtime.errors import ErrorKind, ServingError
from kubevino_runtime.protocols import kserve_v2_pb2 as pb
from kubevino_runtime.protocols.grpc_common import MalformedRequest, parsing, refusing_malformed
from kubevino_runtime.protocols.kserve_grpc import decode_inputs

# field 1 says 2**32 bytes follow: no message of the service parses
TRUNCATED_FIELD = b"\x0a\x80\x80\x80\x80\x10"


class AbortedError(Exception):
    """What grpc.aio's ``context.abort`` raises to end the call."""


class RecordingContext:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise AbortedError


SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]


@pytest.mark.parametrize(
    ("method", "message_class"),
    [
        ("ServerLive", pb.ServerLiveRequest),
        ("ServerReady", pb.ServerReadyRequest),
        ("ModelReady", pb.ModelReadyRequest),
        ("ModelMetadata", pb.ModelMetadataRequest),
    ],
)
def test_a_body_that_does_not_parse_becomes_a_named_malformed_request(
    method: str, message_class: Any
) -> None:
    parse = parsing(SERVICE.methods_by_name[method])
    parsed = parse(TRUNCATED_FIELD)
    assert isinstance(parsed, MalformedRequest)
    assert f"not a valid inference.{message_class.__name__}" in parsed.reason
    assert parse(message_class().SerializeToString()) == message_class()


def test_a_malformed_request_is_refused_before_the_method_runs() -> None:
    ran: list[Any] = []

    async def method(request: Any, context: Any) -> str:
        ran.append(request)
        return "answer"

    handler = refusing_malformed(method)
    context = RecordingContext()
    with pytest.raises(AbortedError):
        asyncio.run(handler(MalformedRequest("request is not a valid X"), context))
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "request is not a valid X")
    assert not ran
    assert asyncio.run(handler(pb.ServerLiveRequest(), RecordingContext())) == "answer"


def _refusal(request: pb.ModelInferRequest, raw: list[bytes]) -> str:
    with pytest.raises(ServingError) as caught:
        decode_inputs(request, raw)
    assert caught.value.kind is ErrorKind.INVALID
    return caught.value.message


def test_typed_contents_wider_than_the_datatype_are_range_checked() -> None:
    request = pb.ModelInferRequest(model_name="counts")
    tensor = request.inputs.add(name="pixels", datatype="UINT8", shape=[1, 2])
    tensor.contents.uint_contents.extend([7, 300])
    assert "300 is outside UINT8's range 0..255" in _refusal(request, [])


def test_raw_contents_of_a_shape_whose_size_overflows_are_refused() -> None:
    request = pb.ModelInferRequest(model_name="affine")
    request.inputs.add(name="x", datatype="FP32", shape=[2**32, 2**32])
    assert "more than any tensor can hold" in _refusal(request, [b""])
