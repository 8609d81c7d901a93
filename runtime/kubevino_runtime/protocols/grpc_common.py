"""What both gRPC front ends share: error kinds as status codes, and method registration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from kubevino_runtime.errors import ErrorKind, ServingError

GRPC_STATUS = {
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class MalformedRequest:
    """What a body that is not the method's request message turned into: gRPC answers an
    exception raised by a deserializer UNKNOWN, so deserializers return this instead and the
    method is refused INVALID_ARGUMENT with the reason before it runs."""

    reason: str


def parsing(method: MethodDescriptor) -> Deserializer:
    """Protobuf's parser for the method's request message, never raising."""
    message_class = GetMessageClass(method.input_type)

    def deserialize(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return MalformedRequest(
                f"request is not a valid {method.input_type.full_name}: {error}"
            )

    return deserialize


def refusing_malformed(
    handler: Callable[..., Awaitable[Any]],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            raise AssertionError("abort returns only by raising")
        return await handler(request, context)

    return handle


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: ServingError) -> NoReturn:
    await context.abort(GRPC_STATUS[error.kind], error.message)
    raise AssertionError("abort returns only by raising")


def method_handlers(
    service: ServiceDescriptor,
    servicer: object,
    deserializer: Callable[[MethodDescriptor], Deserializer] = parsing,
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """A handler per method of ``service``, calling the servicer's method of the same name
    unless the request did not parse; ``deserializer`` chooses how each method's request bytes
    are read (it returns a MalformedRequest rather than raising)."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        make = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            refusing_malformed(getattr(servicer, method.name)),
            request_deserializer=deserializer(method),
            response_serializer=GetMessageClass(method.output_type).SerializeToString,
        )
    return handlers


def add_service(
    server: grpc.aio.Server,
    service: ServiceDescriptor,
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]],
) -> None:
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)
