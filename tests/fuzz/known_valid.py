"""A known-valid request per protocol and model version, and the answer it must get: what
in-process OpenVINO computes. Run after every batch of cases, they show that hostile requests
left the server serving, and serving correct results."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

from tests.fuzz.models import MODELS, Arrays, FuzzModel, Reference
from tests.fuzz.properties import strict_json
from tests.fuzz.rawhttp import RawRequest, send
from tests.fuzz.tfs_grpc import PREDICT, predict_outputs, predict_request

KSERVE_TO_NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_KSERVE = {dtype: name for name, dtype in KSERVE_TO_NUMPY.items()}
BINARY_HEADER = "Inference-Header-Content-Length"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Endpoints:
    rest_port: int
    grpc_channel: grpc.Channel


class WrongAnswerError(AssertionError):
    """A valid request answered wrongly: refused, or with values OpenVINO does not compute."""


def _equal(where: str, got: Arrays, expected: Arrays) -> None:
    if set(got) != set(expected):
        raise WrongAnswerError(f"{where}: outputs {sorted(got)}, expected {sorted(expected)}")
    for name, array in expected.items():
        if got[name].dtype != array.dtype or not np.array_equal(got[name], array):
            raise WrongAnswerError(
                f"{where}: output {name} is {got[name]!r}, in-process OpenVINO computes {array!r}"
            )


def kserve_json_inputs(inputs: Arrays) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": NUMPY_TO_KSERVE[array.dtype],
            "data": array.reshape(-1).tolist(),
        }
        for name, array in inputs.items()
    ]


def kserve_outputs_from_json(document: dict[str, Any], payload: bytes = b"") -> Arrays:
    """The outputs of a KServe v2 REST answer (JSON data or binary chunks after the header)."""
    outputs: Arrays = {}
    offset = 0
    for item in document["outputs"]:
        dtype = KSERVE_TO_NUMPY[item["datatype"]]
        shape = [int(dim) for dim in item["shape"]]
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            chunk = payload[offset : offset + size]
            offset += size
            outputs[item["name"]] = np.frombuffer(chunk, dtype=dtype).reshape(shape)
        else:
            outputs[item["name"]] = np.asarray(item["data"], dtype=dtype).reshape(shape)
    if offset != len(payload):
        raise WrongAnswerError(f"{len(payload) - offset} bytes after the outputs belong to none")
    return outputs


def _rest_infer(endpoints: Endpoints, model: FuzzModel, version: int, binary: bool) -> Arrays:
    inputs = model.known_valid
    described = kserve_json_inputs(inputs)
    if binary:
        for item in described:
            item.pop("data")
            item["parameters"] = {"binary_data_size": inputs[item["name"]].nbytes}
        head = json.dumps(
            {"inputs": described, "parameters": {"binary_data_output": True}}
        ).encode()
        body = head + b"".join(array.tobytes() for array in inputs.values())
        headers: tuple[tuple[str, str], ...] = ((BINARY_HEADER, str(len(head))),)
    else:
        body, headers = json.dumps({"inputs": described}).encode(), ()
    target = f"/v2/models/{model.name}/versions/{version}/infer"
    answer = send(endpoints.rest_port, RawRequest("POST", target, body, headers))
    if answer is None or answer.status != 200:
        raise WrongAnswerError(f"POST {target} (binary={binary}): {answer}")
    if binary:
        length = int(answer.headers[BINARY_HEADER.lower()])
        return kserve_outputs_from_json(strict_json(answer.body[:length]), answer.body[length:])
    return kserve_outputs_from_json(strict_json(answer.body))


def kserve_rest_json(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            got = _rest_infer(endpoints, model, version, binary=False)
            expected = reference.outputs(model.name, version, model.known_valid)
            _equal(f"KServe REST JSON {model.name} v{version}", got, expected)


def kserve_rest_binary(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            got = _rest_infer(endpoints, model, version, binary=True)
            expected = reference.outputs(model.name, version, model.known_valid)
            _equal(f"KServe REST binary {model.name} v{version}", got, expected)


def grpc_outputs(response: Any) -> Arrays:
    outputs: Arrays = {}
    for index, item in enumerate(response.outputs):
        dtype = KSERVE_TO_NUMPY[item.datatype]
        raw = response.raw_output_contents[index]
        outputs[item.name] = np.frombuffer(raw, dtype=dtype).reshape(list(item.shape))
    return outputs


def _grpc_infer(endpoints: Endpoints, model: FuzzModel, version: int, raw: bool) -> Arrays:
    request = pb.ModelInferRequest(model_name=model.name, model_version=str(version))
    for name, array in model.known_valid.items():
        tensor = request.inputs.add(
            name=name, datatype=NUMPY_TO_KSERVE[array.dtype], shape=list(array.shape)
        )
        if raw:
            request.raw_input_contents.append(array.tobytes())
        else:
            field = {"FP32": "fp32_contents", "UINT8": "uint_contents", "INT32": "int_contents"}
            getattr(tensor.contents, field[tensor.datatype]).extend(array.reshape(-1).tolist())
    call = endpoints.grpc_channel.unary_unary(MODEL_INFER)
    try:
        answer: bytes = call(request.SerializeToString(), timeout=60)
    except grpc.RpcError as error:
        raise WrongAnswerError(f"gRPC ModelInfer {model.name} v{version}: {error}") from None
    return grpc_outputs(pb.ModelInferResponse.FromString(answer))


def kserve_grpc_raw(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            got = _grpc_infer(endpoints, model, version, raw=True)
            expected = reference.outputs(model.name, version, model.known_valid)
            _equal(f"KServe gRPC raw {model.name} v{version}", got, expected)


def kserve_grpc_typed(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            got = _grpc_infer(endpoints, model, version, raw=False)
            expected = reference.outputs(model.name, version, model.known_valid)
            _equal(f"KServe gRPC typed contents {model.name} v{version}", got, expected)


def _tfs_predict(endpoints: Endpoints, model: FuzzModel, version: int, rows: bool) -> Any:
    inputs = model.known_valid
    if rows:
        batch = next(iter(inputs.values())).shape[0]
        instances: list[Any] = (
            next(iter(inputs.values())).tolist()
            if len(inputs) == 1
            else [{name: array[i].tolist() for name, array in inputs.items()} for i in range(batch)]
        )
        document: dict[str, Any] = {"instances": instances}
    else:
        document = {"inputs": {name: array.tolist() for name, array in inputs.items()}}
    target = f"/v1/models/{model.name}/versions/{version}:predict"
    answer = send(endpoints.rest_port, RawRequest("POST", target, json.dumps(document).encode()))
    if answer is None or answer.status != 200:
        raise WrongAnswerError(f"POST {target} (rows={rows}): {answer}")
    return strict_json(answer.body)


def _tfs_expected(reference: Reference, model: FuzzModel, version: int) -> dict[str, Any]:
    outputs = reference.outputs(model.name, version, model.known_valid)
    return {name: array.tolist() for name, array in outputs.items()}


def tfs_rest_rows(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            expected = _tfs_expected(reference, model, version)
            got = _tfs_predict(endpoints, model, version, rows=True)["predictions"]
            if len(expected) == 1:
                want: Any = next(iter(expected.values()))
            else:
                batch = len(next(iter(expected.values())))
                want = [{name: rows[i] for name, rows in expected.items()} for i in range(batch)]
            if got != want:
                raise WrongAnswerError(f"TFS rows {model.name} v{version}: {got} != {want}")


def tfs_rest_columns(endpoints: Endpoints, reference: Reference) -> None:
    for model in MODELS:
        for version in model.versions:
            expected = _tfs_expected(reference, model, version)
            got = _tfs_predict(endpoints, model, version, rows=False)["outputs"]
            want = next(iter(expected.values())) if len(expected) == 1 else expected
            if got != want:
                raise WrongAnswerError(f"TFS columns {model.name} v{version}: {got} != {want}")


def tfs_grpc_predict(endpoints: Endpoints, reference: Reference) -> None:
    """Predict with the values in tensor_content and in the dtype's typed field."""
    call = endpoints.grpc_channel.unary_unary(PREDICT)
    for model in MODELS:
        for version in model.versions:
            expected = reference.outputs(model.name, version, model.known_valid)
            for typed in (False, True):
                request = predict_request(model.name, version, model.known_valid, typed=typed)
                where = f"TFS gRPC {model.name} v{version} ({'typed' if typed else 'content'})"
                try:
                    body = call(request.SerializeToString(), timeout=60)
                except grpc.RpcError as error:
                    raise WrongAnswerError(f"{where}: {error.code()} {error.details()}") from None
                _equal(where, predict_outputs(body), expected)


KnownValidCheck = Callable[[Endpoints, Reference], None]
# Every protocol the server speaks, each checked after every batch of every module's cases.
KNOWN_VALID: tuple[KnownValidCheck, ...] = (
    kserve_rest_json,
    kserve_rest_binary,
    kserve_grpc_raw,
    kserve_grpc_typed,
    tfs_rest_rows,
    tfs_rest_columns,
    tfs_grpc_predict,
)


def every_protocol(endpoints: Endpoints, reference: Reference) -> None:
    for check in KNOWN_VALID:
        check(endpoints, reference)
