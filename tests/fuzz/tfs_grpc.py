"""TF-Serving gRPC as the fuzz tier speaks it: messages built with ovmsclient's generated classes
(its own copies of TensorFlow Serving's protos, independent of the server's), tensors made from
arrays and read back into arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from ovmsclient.tfs_compat.grpc.tensors import make_ndarray
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    model_service_pb2 as model_service,
)
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    prediction_service_pb2 as prediction_service,
)

from tests.fuzz.models import Arrays

PREDICTION = prediction_service.DESCRIPTOR.services_by_name["PredictionService"]
MODEL_SERVICE = model_service.DESCRIPTOR.services_by_name["ModelService"]
# ovmsclient compiled its copy under a package of its own; on the wire the services have
# TensorFlow Serving's names.
WIRE_NAMES = {
    PREDICTION.full_name: "tensorflow.serving.PredictionService",
    MODEL_SERVICE.full_name: "tensorflow.serving.ModelService",
}


def wire_path(service: Any, method: str) -> str:
    return f"/{WIRE_NAMES[service.full_name]}/{method}"


PREDICT = wire_path(PREDICTION, "Predict")
GET_MODEL_METADATA = wire_path(PREDICTION, "GetModelMetadata")
GET_MODEL_STATUS = wire_path(MODEL_SERVICE, "GetModelStatus")
SIGNATURE_DEF = "signature_def"

# numpy dtype → (TensorFlow dtype, the typed field that carries its values)
TF_TYPES: dict[np.dtype[Any], tuple[int, str]] = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.float16): (types_pb2.DT_HALF, "half_val"),
    np.dtype(np.int8): (types_pb2.DT_INT8, "int_val"),
    np.dtype(np.int16): (types_pb2.DT_INT16, "int_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
    np.dtype(np.uint16): (types_pb2.DT_UINT16, "int_val"),
    np.dtype(np.uint32): (types_pb2.DT_UINT32, "uint32_val"),
    np.dtype(np.uint64): (types_pb2.DT_UINT64, "uint64_val"),
    np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
}
VALUE_FIELDS = sorted({field for _, field in TF_TYPES.values()} | {"string_val"})


def tensor_proto(array: np.ndarray[Any, Any], *, typed: bool) -> Any:
    """``array`` as a TensorProto: its bytes in ``tensor_content``, or its values in the
    dtype's typed field (float16 as bit patterns in ``half_val``)."""
    dtype, field = TF_TYPES[array.dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if not typed:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    elif field == "half_val":
        getattr(proto, field).extend(array.reshape(-1).view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(array.reshape(-1).tolist())
    return proto


def predict_request(model: str, version: int | None, inputs: Arrays, *, typed: bool) -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tensor_proto(array, typed=typed))
    return request


def predict_outputs(body: bytes) -> Arrays:
    response = predict_pb2.PredictResponse.FromString(body)
    return {name: make_ndarray(proto) for name, proto in response.outputs.items()}


def metadata_request(model: str, version: int | None) -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=[SIGNATURE_DEF])
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def status_request(model: str, version: int | None) -> Any:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request
