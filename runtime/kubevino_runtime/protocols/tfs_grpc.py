"""TensorFlow Serving gRPC: PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus), on the KServe gRPC port, with Model Server's semantics.

A ``model_spec.version`` of 0 or none means the highest loaded version. Methods this server has
no model for (Classify, Regress, MultiInference, HandleReloadConfigRequest) answer UNIMPLEMENTED
with what to use instead. Every request body is parsed here rather than by gRPC, so one that is
not the method's message is INVALID_ARGUMENT instead of gRPC's UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn, TypeAlias

import grpc
import numpy.typing as npt
from google.protobuf.message import Message

from kubevino_runtime.dataplane import DataPlane
from kubevino_runtime.errors import ServingError, invalid, not_found
from kubevino_runtime.protocols.grpc_common import (
    abort,
    add_service,
    method_handlers,
)
from kubevino_runtime.protocols.tfs_api.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
)
from kubevino_runtime.protocols.tfs_messages import (
    SIGNATURE,
    SIGNATURE_DEF_FIELD,
    model_metadata,
    model_status,
)
from kubevino_runtime.protocols.tfs_tensors import decode_tensor, fill_tensor
from kubevino_runtime.served import ServedVersion

API = "TensorFlowServing"
PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_USE_PREDICT = (
    "this server runs OpenVINO models, which have no TensorFlow classification or regression "
    "signature; send the model's inputs to PredictionService/Predict (or KServe ModelInfer)"
)


def requested_version(spec: model_pb2.ModelSpec) -> int | None:
    """The version number a ModelSpec asks for; None for the default (no version, or 0)."""
    if spec.WhichOneof("version_choice") == "version_label":
        raise invalid(
            f"model_spec.version_label {spec.version_label!r} is not supported: versions are "
            "chosen by number (model_spec.version), 0 or none for the highest loaded one"
        )
    return spec.version.value or None


def _model_name(spec: model_pb2.ModelSpec) -> str:
    if not spec.name:
        raise not_found("the request names no model (model_spec.name is empty)")
    return spec.name


def decode_inputs(request: predict_pb2.PredictRequest) -> dict[str, npt.NDArray[Any]]:
    return {name: decode_tensor(name, tensor) for name, tensor in request.inputs.items()}


def requested_outputs(output_filter: Iterable[str], loaded: ServedVersion) -> list[str]:
    """The outputs to return: those in ``output_filter`` (once each), or all when it is empty."""
    available = [output.name for output in loaded.outputs]
    names = list(dict.fromkeys(output_filter)) or available
    unknown = [name for name in names if name not in available]
    if unknown:
        raise invalid(
            f"output_filter names {', '.join(unknown)}, which model {loaded.name} does not "
            f"have; its outputs are {', '.join(available)}"
        )
    return names


class PredictionService:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def Predict(  # noqa: N802 - the protocol's method names
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        try:
            spec = request.model_spec
            loaded = self.plane.version(_model_name(spec), requested_version(spec))
        except ServingError as error:
            await abort(context, error)
        try:
            inputs = decode_inputs(request)
            names = requested_outputs(request.output_filter, loaded)
        except ServingError as error:
            self.plane.count_failure(API, "gRPC", "Predict", loaded.name, str(loaded.version))
            await abort(context, error)
        try:
            outputs = await self.plane.infer(loaded, inputs, API, "gRPC", "Predict")
        except ServingError as error:
            await abort(context, error)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = loaded.name
        response.model_spec.version.value = loaded.version
        response.model_spec.signature_name = SIGNATURE
        for name in names:
            fill_tensor(response.outputs[name], outputs[name])
        return response

    async def GetModelMetadata(  # noqa: N802
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: Context,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        try:
            # Checked before the model is looked up, in Model Server's order.
            if not request.HasField("model_spec"):
                raise invalid("the request has no model_spec")
            if list(request.metadata_field) != [SIGNATURE_DEF_FIELD]:
                raise invalid(
                    f"metadata_field must be [{SIGNATURE_DEF_FIELD!r}], the only metadata this "
                    f"server has; got {list(request.metadata_field)}"
                )
            spec = request.model_spec
            return model_metadata(self.plane.version(_model_name(spec), requested_version(spec)))
        except ServingError as error:
            await abort(context, error)

    async def Classify(self, request: object, context: Context) -> Message:  # noqa: N802
        await _unimplemented(context, "Classify", _USE_PREDICT)

    async def Regress(self, request: object, context: Context) -> Message:  # noqa: N802
        await _unimplemented(context, "Regress", _USE_PREDICT)

    async def MultiInference(self, request: object, context: Context) -> Message:  # noqa: N802
        await _unimplemented(
            context, "MultiInference", "send one PredictionService/Predict per model instead"
        )


class ModelService:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def GetModelStatus(  # noqa: N802
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: Context,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            spec = request.model_spec
            return model_status(self.plane.registry, _model_name(spec), requested_version(spec))
        except ServingError as error:
            await abort(context, error)

    async def HandleReloadConfigRequest(  # noqa: N802
        self, request: object, context: Context
    ) -> Message:
        await _unimplemented(
            context,
            "HandleReloadConfigRequest",
            "kubevino-serve applies its configuration by itself: edit the --config_path file "
            "(read again every --file_system_poll_wait_seconds) or the InferenceModel",
        )


async def _unimplemented(context: Context, method: str, instead: str) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented: {instead}")
    raise AssertionError("abort returns only by raising")


def add_to_server(plane: DataPlane, server: grpc.aio.Server) -> None:
    for service, servicer in (
        (PREDICTION_SERVICE, PredictionService(plane)),
        (MODEL_SERVICE, ModelService(plane)),
    ):
        add_service(server, service, method_handlers(service, servicer))
