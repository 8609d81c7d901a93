"""What both gRPC front ends share: error kinds as status codes, and method registration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
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


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: ServingError) -> NoReturn:
    await context.abort(GRPC_STATUS[error.kind], error.message)
    raise AssertionError("abort returns only by raising")


def method_handlers(
    service: ServiceDescriptor,
    servicer: object,
    deserializer: Callable[[MethodDescriptor], Deserializer],
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """A handler per method of ``service``, calling the servicer's method of the same name;
    ``deserializer`` chooses how each method's request bytes are read."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        make = (
            grpc.stream_stream_rpc_method_handler
            if method.client_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
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
