"""Clients written for OpenVINO Model Server work against kubevino-serve unchanged, and get
what in-process OpenVINO computes."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from tests.runtime.conftest import MAX_REQUEST_BYTES
from tests.runtime.serving import RunningServer

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]


def test_tritonclient_http_infers_the_in_process_result(
    server: RunningServer, image: Image, expected: npt.NDArray[Any]
) -> None:
    client = triton_http.InferenceServerClient(server.rest.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("classifier")
    tensor = triton_http.InferInput("input", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)  # binary tensor extension
    result = client.infer("classifier", [tensor])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
    as_json = triton_http.InferInput("input", list(image.shape), "FP32")
    as_json.set_data_from_numpy(image, binary_data=False)
    wanted = triton_http.InferRequestedOutput("probabilities", binary_data=False)
    result = client.infer("classifier", [as_json], outputs=[wanted], model_version="1")
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6)


def test_tritonclient_grpc_infers_the_in_process_result(
    server: RunningServer, image: Image, expected: npt.NDArray[Any]
) -> None:
    client = triton_grpc.InferenceServerClient(server.grpc)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("classifier", "1")
    metadata = client.get_model_metadata("classifier", as_json=True)
    assert metadata["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": ["1", "3", "224", "224"]}
    ]
    tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)  # raw_input_contents
    result = client.infer("classifier", [tensor], request_id="r-1")
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
    assert result.get_response().id == "r-1"


def test_grpc_typed_contents_are_accepted_too(
    server: RunningServer, image: Image, expected: npt.NDArray[Any]
) -> None:
    with grpc.insecure_channel(server.grpc) as channel:
        # The server's proto and tritonclient's share package and field numbers (both are
        # KServe v2), so tritonclient's stub is a real, independent client.
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="classifier")
        tensor = request.inputs.add(name="input", datatype="FP32", shape=list(image.shape))
        tensor.contents.fp32_contents.extend(image.reshape(-1).tolist())
        response = stub.ModelInfer(request)
    output = np.frombuffer(response.raw_output_contents[0], dtype=np.float32).reshape(1, 1000)
    np.testing.assert_array_equal(output, expected)


def test_kserve_metadata_and_health_over_rest(server: RunningServer) -> None:
    assert httpx.get(f"{server.rest}/v2").json()["name"] == "kubevino"
    metadata = httpx.get(f"{server.rest}/v2/models/classifier/versions/1").json()
    assert metadata["versions"] == ["1"]
    assert metadata["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 1000]}
    ]
    assert metadata["execution_devices"] == ["CPU"]


def test_tf_serving_predict_in_row_and_column_formats(
    server: RunningServer, image: Image, expected: npt.NDArray[Any]
) -> None:
    rows = httpx.post(
        f"{server.rest}/v1/models/classifier:predict", json={"instances": image.tolist()}
    )
    assert rows.status_code == 200, rows.text
    np.testing.assert_allclose(np.array(rows.json()["predictions"]), expected, rtol=1e-6)
    columns = httpx.post(
        f"{server.rest}/v1/models/classifier/versions/1:predict",
        json={"inputs": {"input": image.tolist()}},
    )
    assert columns.status_code == 200, columns.text
    np.testing.assert_allclose(np.array(columns.json()["outputs"]), expected, rtol=1e-6)


def test_tf_serving_status_and_metadata(server: RunningServer) -> None:
    status = httpx.get(f"{server.rest}/v1/models/classifier").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    signature = httpx.get(f"{server.rest}/v1/models/classifier/metadata").json()
    inputs = signature["metadata"]["signature_def"]["signatureDef"]["serving_default"]["inputs"]
    assert inputs["input"]["dtype"] == "DT_FLOAT"


def _kserve_json(
    name: str = "input",
    shape: list[int] | None = None,
    datatype: str = "FP32",
    data: list[Any] | None = None,
) -> dict[str, Any]:
    shape = shape or [1, 3, 224, 224]
    count = int(np.prod(shape))
    return {
        "inputs": [
            {
                "name": name,
                "shape": shape,
                "datatype": datatype,
                "data": data if data is not None else [0] * count,
            }
        ]
    }


REST_MISTAKES: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/v2/models/nope/infer", _kserve_json(), 404, "model nope is not served here"),
    ("POST", "/v2/models/classifier/versions/7/infer", _kserve_json(), 404, "has no version 7"),
    (
        "POST",
        "/v2/models/classifier/infer",
        _kserve_json(name="pixels"),
        400,
        "has no input pixels",
    ),
    (
        "POST",
        "/v2/models/classifier/infer",
        _kserve_json(shape=[1, 3, 32, 32]),
        400,
        "expects shape [1, 3, 224, 224], got [1, 3, 32, 32]",
    ),
    (
        "POST",
        "/v2/models/classifier/infer",
        _kserve_json(datatype="INT32"),
        400,
        "expects FP32, got INT32",
    ),
    (
        "POST",
        "/v2/models/classifier/infer",
        _kserve_json(data=[1.0, 2.0]),
        400,
        "needs 150528 values, data has 2",
    ),
    (
        "POST",
        "/v2/models/classifier/infer",
        _kserve_json(datatype="FP8"),
        400,
        "unsupported datatype",
    ),
    ("POST", "/v2/models/classifier/infer", {"inputs": []}, 400, "non-empty 'inputs'"),
    ("POST", "/v2/models/classifier/versions/x/infer", _kserve_json(), 400, "positive integer"),
    ("GET", "/v2/models/nope", None, 404, "model nope is not served here"),
    ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "model nope is not served here"),
    ("POST", "/v1/models/classifier:predict", {"instances": [[1, 2]]}, 400, "expects shape"),
    ("POST", "/v1/models/classifier:predict", {"instances": [["a"]]}, 400, "takes numbers"),
    ("POST", "/v1/models/classifier:predict", {"rows": []}, 400, "exactly one of 'instances'"),
    ("GET", "/v1/models/classifier/versions/9", None, 404, "has no version 9"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), REST_MISTAKES)
def test_client_mistakes_get_a_4xx_with_a_specific_message(
    server: RunningServer, method: str, path: str, body: Any, status: int, message: str
) -> None:
    response = httpx.request(method, f"{server.rest}{path}", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_bodies_are_client_errors(server: RunningServer) -> None:
    url = f"{server.rest}/v2/models/classifier/infer"
    assert "not valid JSON" in httpx.post(url, content=b"{nope").json()["error"]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 3, 224, 224],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 602112},
                }
            ]
        }
    ).encode()
    short = httpx.post(
        url,
        content=header + b"\0" * 10,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert short.status_code == 400 and "runs past" in short.json()["error"]
    tfs = httpx.post(f"{server.rest}/v1/models/classifier:predict", content=b"[1,")
    assert tfs.status_code == 400 and "not valid JSON" in tfs.json()["error"]


def test_payloads_over_the_limit_are_refused_as_too_large(server: RunningServer) -> None:
    big = b"0" * (MAX_REQUEST_BYTES + 1)
    response = httpx.post(f"{server.rest}/v2/models/classifier/infer", content=big)
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["error"]
    client = triton_grpc.InferenceServerClient(server.grpc)
    huge = np.zeros((1, 3, 1024, 1024), dtype=np.float32)  # 12 MiB
    tensor = triton_grpc.InferInput("input", list(huge.shape), "FP32")
    tensor.set_data_from_numpy(huge)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("classifier", [tensor])
    assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_grpc_mistakes_map_to_grpc_status_codes(server: RunningServer, image: Image) -> None:
    client = triton_grpc.InferenceServerClient(server.grpc)
    tensor = triton_grpc.InferInput("input", [1, 3, 112, 448], "FP32")
    tensor.set_data_from_numpy(image.reshape(1, 3, 112, 448))
    with pytest.raises(InferenceServerException) as wrong_shape:
        client.infer("classifier", [tensor])
    assert wrong_shape.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "expects shape [1, 3, 224, 224]" in wrong_shape.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [tensor])
    assert unknown.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as unknown_output:
        client.infer(
            "classifier",
            [tensor],
            outputs=[triton_grpc.InferRequestedOutput("logits")],
        )
    assert unknown_output.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_a_grpc_body_that_is_not_a_model_infer_request_is_invalid_argument(
    server: RunningServer,
) -> None:
    with grpc.insecure_channel(server.grpc) as channel:
        model_infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            model_infer(bytes([(7 << 3) | 2, 50]) + b"short")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "runs past the end" in str(caught.value.details())


def test_metrics_move_with_requests(server: RunningServer, image: Image) -> None:
    def success_count() -> float:
        text = httpx.get(f"{server.rest}/metrics").text
        for line in text.splitlines():
            if line.startswith("ovms_requests_success{") and 'interface="gRPC"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = success_count()
    client = triton_grpc.InferenceServerClient(server.grpc)
    tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    for _ in range(3):
        client.infer("classifier", [tensor])
    assert success_count() == before + 3
    text = httpx.get(f"{server.rest}/metrics").text
    for family in (
        "ovms_request_time_us_bucket",
        "ovms_inference_time_us_count",
        "ovms_wait_for_infer_req_time_us_count",
        "ovms_current_requests",
        "ovms_requests_fail",
        "kubevino_request_queue_depth",
    ):
        assert family in text, family
