"""KServe v2 gRPC (inference.GRPCInferenceService), raw_input_contents included."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf.descriptor import MethodDescriptor

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.errors import ServingError, invalid
from kubevino_runtime.protocols import kserve_v2_pb2 as pb
from kubevino_runtime.protocols import kserve_v2_pb2_grpc as pb_grpc
from kubevino_runtime.protocols.grpc_common import (
    GRPC_STATUS,
    Deserializer,
    add_service,
    method_handlers,
    parsing,
)
from kubevino_runtime.protocols.kserve_wire import (
    InferRequestWire,
    parse_infer_request,
)
from kubevino_runtime.served import ServedVersion
from kubevino_runtime.tensors import from_raw, from_typed_contents, kserve_datatype, numpy_dtype

API = "KServe"
_SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def decode_inputs(
    request: pb.ModelInferRequest, raw: Sequence[bytes | memoryview]
) -> dict[str, npt.NDArray[Any]]:
    """Arrays for the request's inputs; ``raw`` is its raw_input_contents (views of the body)."""
    if not request.inputs:
        raise invalid("request has no inputs")
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    inputs: dict[str, npt.NDArray[Any]] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in inputs:
            raise invalid(f"input {name} is given twice")
        dtype = numpy_dtype(tensor.datatype, name)
        shape = list(tensor.shape)
        if raw:
            inputs[name] = from_raw(raw[index], shape, dtype, name)
            continue
        field = _CONTENTS_FIELD.get(tensor.datatype)
        if field is None:
            raise invalid(f"input {name}: {tensor.datatype} needs raw_input_contents")
        values = list(getattr(tensor.contents, field))
        inputs[name] = from_typed_contents(values, shape, dtype, name)
    return inputs


def _requested(request: pb.ModelInferRequest, loaded: ServedVersion) -> list[str]:
    available = [output.name for output in loaded.outputs]
    names = [output.name for output in request.outputs] or available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise invalid(
            f"model has no output {', '.join(unknown)}; its outputs are {', '.join(available)}"
        )
    return names


class KServeGrpc(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def _abort(
        self, context: grpc.aio.ServicerContext[Any, Any], error: ServingError
    ) -> None:
        await context.abort(GRPC_STATUS[error.kind], error.message)

    async def ServerLive(  # noqa: N802 - the protocol's method names
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    async def ServerReady(  # noqa: N802
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelReadyResponse:
        try:
            return pb.ModelReadyResponse(
                ready=self.plane.model_ready(request.name, request.version)
            )
        except ServingError as error:
            await self._abort(context, error)
            raise

    async def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**self.plane.server_metadata())

    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ModelMetadataResponse:
        try:
            metadata = self.plane.model_metadata(request.name, request.version)
        except ServingError as error:
            await self._abort(context, error)
            raise

        def tensors(items: Iterable[dict[str, Any]]) -> list[Any]:
            return [pb.ModelMetadataResponse.TensorMetadata(**item) for item in items]

        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=tensors(metadata["inputs"]),
            outputs=tensors(metadata["outputs"]),
        )

    async def ModelInfer(  # noqa: N802
        self,
        wire: InferRequestWire,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelInferResponse:
        request = wire.request
        try:
            loaded = self.plane.version(request.model_name, request.model_version)
        except ServingError as error:
            await self._abort(context, error)
            raise
        try:
            inputs = decode_inputs(request, wire.raw_input_contents)
            names = _requested(request, loaded)
        except ServingError as error:
            self.plane.count_failure(API, "gRPC", "ModelInfer", loaded.name, str(loaded.version))
            await self._abort(context, error)
            raise
        try:
            outputs = await self.plane.infer(loaded, inputs, API, "gRPC", "ModelInfer")
        except ServingError as error:
            await self._abort(context, error)
            raise
        response = pb.ModelInferResponse(
            model_name=loaded.name, model_version=str(loaded.version), id=request.id
        )
        for name in names:
            array = np.ascontiguousarray(outputs[name])
            response.outputs.add(
                name=name, datatype=kserve_datatype(array.dtype), shape=list(array.shape)
            )
            response.raw_output_contents.append(array.tobytes())
        return response


def _deserializer(method: MethodDescriptor) -> Deserializer:
    """ModelInfer keeps its tensors in the received buffer (kserve_wire); every other method
    parses its message with protobuf as usual."""
    return parse_infer_request if method.name == "ModelInfer" else parsing(method)


def add_to_server(plane: DataPlane, server: grpc.aio.Server) -> None:
    handlers = method_handlers(_SERVICE_DESCRIPTOR, KServeGrpc(plane), _deserializer)
    add_service(server, _SERVICE_DESCRIPTOR, handlers)
