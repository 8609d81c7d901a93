"""TF-Serving's model status and metadata messages, built once for gRPC and REST alike.

REST sends these same messages as JSON (protobuf's JSON mapping, as Model Server does), so both
transports always agree, down to Model Server's field spellings (``model_version_status`` but
``modelSpec``, as the .proto files' json_name options decide).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from kubevino_runtime.errors import not_found
from kubevino_runtime.protocols.descriptors import POOL
from kubevino_runtime.protocols.tfs_api.tensorflow.core.protobuf import (
    error_codes_pb2,
    meta_graph_pb2,
)
from kubevino_runtime.protocols.tfs_api.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
)
from kubevino_runtime.protocols.tfs_tensors import tf_dtype
from kubevino_runtime.served import ServedVersion, TensorInfo
from kubevino_runtime.versions import VersionLookup

SIGNATURE = "serving_default"
SIGNATURE_DEF_FIELD = "signature_def"  # the one metadata field TF Serving defines

_State = get_model_status_pb2.ModelVersionStatus.State
# The registry's states as Model Server reports them: a failed load stays LOADING with the
# error code UNKNOWN (TF Serving's state list has no failed state).
_STATES: dict[str, tuple[int, int]] = {
    "LOADING": (_State.LOADING, error_codes_pb2.OK),
    "LOADING_FAILED": (_State.LOADING, error_codes_pb2.UNKNOWN),
    "AVAILABLE": (_State.AVAILABLE, error_codes_pb2.OK),
    "UNLOADING": (_State.UNLOADING, error_codes_pb2.OK),
    "END": (_State.END, error_codes_pb2.OK),
}


def model_status(
    registry: VersionLookup[Any], name: str, version: int | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """Every version the model has had, oldest first, or only ``version`` when one is given
    (0 or None: every version, as in Model Server)."""
    served = registry.model(name)
    numbers = sorted(served.status)
    if version:
        if version not in served.status:
            raise not_found(f"model {name} has no version {version}")
        numbers = [version]
    response = get_model_status_pb2.GetModelStatusResponse()
    for number in numbers:
        status = served.status[number]
        state, code = _STATES[status.state]
        entry = response.model_version_status.add(version=number, state=state)
        entry.status.error_code = code
        # Model Server puts the code's name here; a failed load's reason says more.
        entry.status.error_message = status.error or error_codes_pb2.Code.Name(code)
    return response


def model_metadata(loaded: ServedVersion) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """One ``serving_default`` signature with every input and output; -1 marks a dynamic
    dimension."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signature = signatures.signature_def[SIGNATURE]
    for info in loaded.inputs:
        _describe(signature.inputs[info.name], info)
    for info in loaded.outputs:
        _describe(signature.outputs[info.name], info)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = loaded.name
    response.model_spec.version.value = loaded.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
    return response


def _describe(target: meta_graph_pb2.TensorInfo, info: TensorInfo) -> None:
    target.name = info.name
    target.dtype = tf_dtype(info.element_type)
    for size in info.shape:
        target.tensor_shape.dim.add(size=size)


def as_json(message: Any) -> dict[str, Any]:
    """Protobuf's JSON mapping with fields at their defaults included, as Model Server sends."""
    document: dict[str, Any] = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, descriptor_pool=POOL
    )
    return document
