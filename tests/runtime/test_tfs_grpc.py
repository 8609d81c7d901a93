"""TensorFlow Serving's API as Model Server serves it: ovmsclient (gRPC and HTTP) works unchanged
and gets what in-process OpenVINO computes; raw gRPC stubs (ovmsclient's own generated protos,
independent of the server's) pin down tensors, versions and errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.opset13 as ops
import ovmsclient
import pytest
from ovmsclient.tfs_compat.grpc.tensors import make_ndarray
from ovmsclient.tfs_compat.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from ovmsclient.tfs_compat.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from kubevino_runtime.demo_model import build_model
from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]
Array = npt.NDArray[Any]
TensorProto = tensor_pb2.TensorProto
SECOND_VERSION_SEED = 5
TYPED_INPUTS: dict[str, Array] = {
    "half": np.array([[0.5, -1.25], [3.0, 1024.0]], dtype=np.float16),
    "small_int": np.array([-128, 5, 127], dtype=np.int8),
    "wide_uint": np.array([0, 40000, 65535], dtype=np.uint16),
    # Within int32: OpenVINO's CPU plugin computes int64 in 32 bits.
    "count": np.array([-7, 0, 2**31 - 2], dtype=np.int64),
    "flag": np.array([True, False, True], dtype=np.bool_),
}
TYPED_DTYPES = {
    "half": types_pb2.DT_HALF,
    "small_int": types_pb2.DT_INT8,
    "wide_uint": types_pb2.DT_UINT16,
    "count": types_pb2.DT_INT64,
    "flag": types_pb2.DT_BOOL,
}


def _typed_model() -> ov.Model:
    """Inputs of the dtypes TensorFlow keeps in half_val, int_val, int64_val and bool_val."""
    params = {
        name: ops.parameter(list(array.shape), array.dtype, name=name)
        for name, array in TYPED_INPUTS.items()
    }
    doubled = ops.add(params["half"], params["half"])
    doubled.output(0).set_names({"half_doubled"})
    plus_one = ops.add(params["count"], ops.constant(np.array(1, dtype=np.int64)))
    plus_one.output(0).set_names({"count_plus_one"})
    as_float = [ops.convert(params[name], "f32") for name in ("small_int", "wide_uint", "flag")]
    total = ops.add(ops.add(as_float[0], as_float[1]), as_float[2])
    total.output(0).set_names({"total"})
    return ov.Model([doubled, plus_one, total], list(params.values()), "typed")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """classifier versions 1 and 2 (different weights), flexible (the classifier with a dynamic
    batch) and typed (inputs of five dtypes)."""
    root = tmp_path_factory.mktemp("tfs-models")
    shutil.copytree(model_dir / "1", root / "classifier" / "1")
    second = root / "classifier" / "2" / "model.xml"
    ov.save_model(build_model(seed=SECOND_VERSION_SEED), str(second), compress_to_fp16=False)
    shutil.copytree(model_dir / "1", root / "flexible" / "1")
    ov.save_model(_typed_model(), str(root / "typed" / "1" / "model.xml"), compress_to_fp16=False)
    return root


@pytest.fixture(scope="module")
def tfs_server(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    def entry(name: str, **settings: Any) -> dict[str, Any]:
        return {"config": {"name": name, "base_path": str(repository / name), **settings}}

    config = repository / "config.json"
    entries = [
        entry("classifier", model_version_policy={"all": {}}),
        entry("flexible", shape="(-1,3,224,224)"),
        entry("typed"),
    ]
    config.write_text(json.dumps({"model_config_list": entries}))
    with running_server(["--config_path", str(config)], tmp_path_factory.mktemp("tfs")) as server:
        server.wait_ready()
        yield server


@pytest.fixture(scope="module")
def expected_by_version(repository: Path, image: Image) -> dict[int, Array]:
    core = ov.Core()
    return {
        version: core.compile_model(str(repository / "classifier" / str(version) / "model.xml"))(
            image
        )[0]
        for version in (1, 2)
    }


@pytest.fixture(scope="module")
def expected_typed(repository: Path) -> dict[str, Array]:
    compiled = ov.Core().compile_model(str(repository / "typed" / "1" / "model.xml"), "CPU")
    results = compiled(TYPED_INPUTS)
    return {output.get_any_name(): results[output] for output in compiled.outputs}


@pytest.fixture(params=["grpc", "http"])
def ovms(request: pytest.FixtureRequest, tfs_server: RunningServer) -> Any:
    if request.param == "grpc":
        return ovmsclient.make_grpc_client(tfs_server.grpc)
    return ovmsclient.make_http_client(tfs_server.rest.removeprefix("http://"))


# --- ovmsclient, over gRPC and over HTTP -----------------------------------------------------

AVAILABLE = {"state": "AVAILABLE", "error_code": 0, "error_message": "OK"}
CLASSIFIER_SIGNATURE = {
    "inputs": {"input": {"shape": [1, 3, 224, 224], "dtype": "DT_FLOAT"}},
    "outputs": {"probabilities": {"shape": [1, 1000], "dtype": "DT_FLOAT"}},
}


def test_model_status_lists_every_version_unless_one_is_asked_for(ovms: Any) -> None:
    assert ovms.get_model_status("classifier") == {1: AVAILABLE, 2: AVAILABLE}
    assert ovms.get_model_status("classifier", model_version=1) == {1: AVAILABLE}


def test_metadata_describes_the_default_version_or_the_one_asked_for(ovms: Any) -> None:
    assert ovms.get_model_metadata("classifier") == {"model_version": 2, **CLASSIFIER_SIGNATURE}
    assert ovms.get_model_metadata("classifier", model_version=1) == {
        "model_version": 1,
        **CLASSIFIER_SIGNATURE,
    }
    flexible = ovms.get_model_metadata("flexible")
    assert flexible["inputs"]["input"]["shape"] == [-1, 3, 224, 224]  # dynamic: -1
    assert flexible["outputs"]["probabilities"]["shape"] == [-1, 1000]


def test_predict_runs_the_default_version_or_the_one_asked_for(
    ovms: Any, image: Image, expected_by_version: dict[int, Array]
) -> None:
    assert not np.array_equal(expected_by_version[1], expected_by_version[2])
    default = ovms.predict({"input": image}, "classifier")
    np.testing.assert_array_equal(default, expected_by_version[2])
    first = ovms.predict({"input": image}, "classifier", model_version=1)
    np.testing.assert_array_equal(first, expected_by_version[1])


def test_ovmsclient_raises_its_own_errors_for_client_mistakes(ovms: Any, image: Image) -> None:
    with pytest.raises(ovmsclient.ModelNotFoundError, match="model nope is not served here"):
        ovms.predict({"input": image}, "nope")
    with pytest.raises(ovmsclient.ModelNotFoundError, match="has no version 7"):
        ovms.get_model_status("classifier", model_version=7)
    with pytest.raises(ovmsclient.ModelNotFoundError, match="has no version 7"):
        ovms.get_model_metadata("classifier", model_version=7)
    with pytest.raises(ovmsclient.InvalidInputError, match="has no input pixels"):
        ovms.predict({"pixels": image}, "classifier")


# --- raw gRPC stubs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel(tfs_server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(tfs_server.grpc) as opened:
        yield opened


@pytest.fixture(scope="module")
def predictions(channel: grpc.Channel) -> Any:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> Any:
    return model_service_pb2_grpc.ModelServiceStub(channel)


def _tensor(dtype: int, shape: list[int], **fields: Any) -> Any:
    tensor = TensorProto(dtype=dtype, **fields)
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    return tensor


def _image_tensor(image: Image, shape: list[int] | None = None, **fields: Any) -> Any:
    content = fields or {"tensor_content": image.tobytes()}
    return _tensor(types_pb2.DT_FLOAT, shape or list(image.shape), **content)


def _predict(
    model: str,
    inputs: dict[str, Any],
    version: int | None = None,
    output_filter: tuple[str, ...] = (),
) -> Any:
    request = predict_pb2.PredictRequest(output_filter=output_filter)
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    return request


def _rpc_error(call: Callable[[Any], Any], request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)
    return caught.value


def test_typed_values_reach_the_model_and_outputs_come_back_in_tensor_content(
    predictions: Any, expected_typed: dict[str, Array]
) -> None:
    values = {
        "half": {"half_val": TYPED_INPUTS["half"].view(np.uint16).ravel().tolist()},
        "small_int": {"int_val": TYPED_INPUTS["small_int"].tolist()},
        "wide_uint": {"int_val": TYPED_INPUTS["wide_uint"].tolist()},
        "count": {"int64_val": TYPED_INPUTS["count"].tolist()},
        "flag": {"bool_val": TYPED_INPUTS["flag"].tolist()},
    }
    inputs = {
        name: _tensor(TYPED_DTYPES[name], list(array.shape), **values[name])
        for name, array in TYPED_INPUTS.items()
    }
    response = predictions.Predict(_predict("typed", inputs))
    assert set(response.outputs) == set(expected_typed)
    for name, expected in expected_typed.items():
        output = response.outputs[name]
        assert output.tensor_content and not output.half_val and not output.int64_val
        result = make_ndarray(output)
        assert result.dtype == expected.dtype, name
        np.testing.assert_array_equal(result, expected)
    assert response.model_spec.name == "typed" and response.model_spec.version.value == 1


def test_float_val_gives_what_tensor_content_gives(
    predictions: Any, image: Image, expected_by_version: dict[int, Array]
) -> None:
    typed = _image_tensor(image, float_val=image.ravel().tolist())
    for tensor in (typed, _image_tensor(image)):
        response = predictions.Predict(_predict("classifier", {"input": tensor}))
        np.testing.assert_array_equal(
            make_ndarray(response.outputs["probabilities"]), expected_by_version[2]
        )


def test_no_version_and_version_zero_both_mean_the_highest_loaded_version(
    predictions: Any, models: Any, image: Image
) -> None:
    for version in (None, 0):
        request = _predict("classifier", {"input": _image_tensor(image)}, version=version)
        assert predictions.Predict(request).model_spec.version.value == 2
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "classifier"
        if version is not None:
            status.model_spec.version.value = version
        listed = models.GetModelStatus(status).model_version_status
        assert [entry.version for entry in listed] == [1, 2]


def test_output_filter_returns_only_the_outputs_named(
    predictions: Any, expected_typed: dict[str, Array]
) -> None:
    inputs = {
        name: _tensor(TYPED_DTYPES[name], list(array.shape), tensor_content=array.tobytes())
        for name, array in TYPED_INPUTS.items()
    }
    filtered = predictions.Predict(_predict("typed", inputs, output_filter=("count_plus_one",)))
    assert list(filtered.outputs) == ["count_plus_one"]
    np.testing.assert_array_equal(
        make_ndarray(filtered.outputs["count_plus_one"]), expected_typed["count_plus_one"]
    )
    error = _rpc_error(predictions.Predict, _predict("typed", inputs, output_filter=("logits",)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output_filter names logits" in str(error.details())
    assert "count_plus_one" in str(error.details())


@pytest.mark.parametrize(
    ("method", "request_message", "advice"),
    [
        ("Classify", classification_pb2.ClassificationRequest(), "Predict"),
        ("Regress", regression_pb2.RegressionRequest(), "Predict"),
        ("MultiInference", inference_pb2.MultiInferenceRequest(), "one PredictionService/Predict"),
        ("HandleReloadConfigRequest", model_management_pb2.ReloadConfigRequest(), "--config_path"),
    ],
)
def test_methods_without_an_openvino_counterpart_are_unimplemented_and_say_what_to_use(
    predictions: Any, models: Any, method: str, request_message: Any, advice: str
) -> None:
    stub = models if method == "HandleReloadConfigRequest" else predictions
    error = _rpc_error(getattr(stub, method), request_message)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert f"{method} is not implemented" in str(error.details())
    assert advice in str(error.details())


def _metadata_request(model: str, version: int | None = None) -> Any:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def _status_request(model: str, version: int | None = None) -> Any:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


@pytest.mark.parametrize(("model", "version"), [("nope", None), ("classifier", 9)])
def test_unknown_models_and_versions_are_not_found_by_every_method(
    predictions: Any, models: Any, image: Image, model: str, version: int | None
) -> None:
    message = "model nope is not served here" if version is None else "has no version 9"
    calls = [
        (predictions.Predict, _predict(model, {"input": _image_tensor(image)}, version)),
        (predictions.GetModelMetadata, _metadata_request(model, version)),
        (models.GetModelStatus, _status_request(model, version)),
    ]
    for call, request in calls:
        error = _rpc_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND, call
        assert message in str(error.details())


def _with_version_label(request: Any) -> Any:
    request.model_spec.version_label = "stable"
    return request


PREDICT_MISTAKES: list[tuple[str, Callable[[Image], Any], str]] = [
    (
        "wrong input name",
        lambda image: _predict("classifier", {"pixels": _image_tensor(image)}),
        "model classifier has no input pixels; its inputs are input",
    ),
    (
        "wrong dtype",
        lambda image: _predict(
            "classifier",
            {
                "input": _tensor(
                    types_pb2.DT_INT32, list(image.shape), tensor_content=image.tobytes()
                )
            },
        ),
        "expects FP32, got INT32",
    ),
    (
        "wrong shape",
        lambda image: _predict(
            "classifier", {"input": _image_tensor(image, shape=[1, 3, 112, 448])}
        ),
        "expects shape [1, 3, 224, 224], got [1, 3, 112, 448]",
    ),
    (
        "tensor_content shorter than its shape",
        lambda image: _predict(
            "classifier", {"input": _image_tensor(image, tensor_content=image.tobytes()[:-4])}
        ),
        "needs 602112 bytes of tensor_content, got 602108",
    ),
    (
        "a shape whose size overflows 64 bits",
        lambda image: _predict(
            "classifier", {"input": _image_tensor(image, shape=[2**32, 2**32], tensor_content=b"1")}
        ),
        "more than any tensor can hold",
    ),
    (
        "typed values in the wrong field",
        lambda image: _predict(
            "classifier", {"input": _image_tensor(image, int_val=[1] * image.size)}
        ),
        "DT_FLOAT values go in float_val or tensor_content, not in int_val",
    ),
    (
        "a version label",
        lambda image: _with_version_label(_predict("classifier", {"input": _image_tensor(image)})),
        "version_label 'stable' is not supported",
    ),
]


@pytest.mark.parametrize(
    ("build", "message"),
    [(build, message) for _, build, message in PREDICT_MISTAKES],
    ids=[name for name, _, _ in PREDICT_MISTAKES],
)
def test_predict_mistakes_are_invalid_argument_with_what_is_wrong(
    predictions: Any, image: Image, build: Callable[[Image], Any], message: str
) -> None:
    error = _rpc_error(predictions.Predict, build(image))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(error.details())


def test_metadata_needs_a_model_spec_and_the_signature_def_field(predictions: Any) -> None:
    no_field = _metadata_request("classifier")
    del no_field.metadata_field[:]
    for request, message in [
        (get_model_metadata_pb2.GetModelMetadataRequest(), "no model_spec"),
        (no_field, "metadata_field must be ['signature_def']"),
    ]:
        error = _rpc_error(predictions.GetModelMetadata, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in str(error.details())


def test_a_body_that_is_not_the_method_s_message_is_invalid_argument(
    channel: grpc.Channel,
) -> None:
    broken = bytes([(2 << 3) | 2, 50]) + b"short"  # field 2 (inputs) runs past the end
    for path in (
        "/tensorflow.serving.PredictionService/Predict",
        "/tensorflow.serving.ModelService/GetModelStatus",
    ):
        error = _rpc_error(channel.unary_unary(path), broken)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, path
        assert "request is not a valid tensorflow.serving." in str(error.details())


# --- REST: the same messages as JSON ------------------------------------------------------------


def test_rest_status_and_metadata_are_the_grpc_messages_in_model_server_json(
    tfs_server: RunningServer,
) -> None:
    def versions(path: str) -> list[str]:
        document = httpx.get(f"{tfs_server.rest}/v1/models/classifier{path}").json()
        return [entry["version"] for entry in document["model_version_status"]]

    assert versions("") == versions("/versions/0") == ["1", "2"]
    assert versions("/versions/1") == ["1"]
    missing = httpx.get(f"{tfs_server.rest}/v1/models/classifier/versions/9")
    assert missing.status_code == 404 and "has no version 9" in missing.json()["error"]
    status = httpx.get(f"{tfs_server.rest}/v1/models/classifier/versions/2").json()
    assert status["model_version_status"][0]["status"] == {
        "error_code": "OK",
        "error_message": "OK",
    }
    metadata = httpx.get(f"{tfs_server.rest}/v1/models/classifier/versions/0/metadata").json()
    assert metadata["modelSpec"] == {"name": "classifier", "version": "2", "signatureName": ""}
    signature = metadata["metadata"]["signature_def"]
    assert signature["@type"] == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    tensor = signature["signatureDef"]["serving_default"]["inputs"]["input"]
    assert tensor["dtype"] == "DT_FLOAT"
    assert [dim["size"] for dim in tensor["tensorShape"]["dim"]] == ["1", "3", "224", "224"]


# --- a version that fails to load ----------------------------------------------------------------


def test_a_version_that_failed_to_load_is_reported_as_model_server_does_and_is_not_default(
    tmp_path: Path, model_dir: Path, image: Image, expected: Array
) -> None:
    base = tmp_path / "half-broken"
    shutil.copytree(model_dir / "1", base / "1")
    (base / "2").mkdir()
    (base / "2" / "model.xml").write_text("<net>not a model</net>")
    args = [
        "--model_path",
        str(base),
        "--model_name",
        "half-broken",
        "--model_version_policy",
        json.dumps({"all": {}}),
    ]
    with running_server(args, tmp_path) as server:

        def failed() -> bool:
            response = httpx.get(f"{server.rest}/v1/models/half-broken/versions/2")
            if response.status_code != 200:
                return False  # the first scan has not reached version 2 yet
            status = response.json()["model_version_status"][0]["status"]
            return bool(status["error_code"] == "UNKNOWN")

        server.wait_for(failed, 60, "reporting version 2's failed load")
        client = ovmsclient.make_grpc_client(server.grpc)
        status = client.get_model_status("half-broken")
        assert status[1] == AVAILABLE
        assert status[2]["state"] == "LOADING" and status[2]["error_code"] == 2  # UNKNOWN
        assert status[2]["error_message"] not in ("", "OK")
        np.testing.assert_array_equal(client.predict({"input": image}, "half-broken"), expected)
