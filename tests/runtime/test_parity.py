"""Model Server's flags and config.json fields that kubevino-serve honours do what they do in
Model Server, shown on the real server (tests/unit/test_parity.py ties each row of the parity
table to the test that shows it)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.opset13 as ops
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from kubevino_runtime.demo_model import build_model
from kubevino_runtime.engine import default_target
from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]
DEFAULT_FAMILY = "ovms_requests_success"
OPTIONAL_FAMILY = "ovms_infer_req_queue_size"


def _infer(server: RunningServer, model: str, name: str, data: npt.NDArray[Any]) -> Any:
    client = triton_grpc.InferenceServerClient(server.grpc)
    datatype = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}[data.dtype]
    tensor = triton_grpc.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    try:
        return client.infer(model, [tensor])
    finally:
        client.close()


def _metadata(server: RunningServer, model: str) -> dict[str, Any]:
    response = httpx.get(f"{server.rest}/v2/models/{model}")
    assert response.status_code == 200, response.text
    metadata: dict[str, Any] = response.json()
    return metadata


def _families(server: RunningServer) -> set[str]:
    """The families /metrics declares."""
    text = httpx.get(f"{server.rest}/metrics").text
    declared = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    return set(declared)


def _gauge(server: RunningServer, family: str, model: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(f'{family}{{name="{model}"'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {family} for {model}")


def _write_config(path: Path, *entries: dict[str, Any], **top: Any) -> Path:
    document = {"model_config_list": [{"config": entry} for entry in entries], **top}
    path.write_text(json.dumps(document))
    return path


def _in_process(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """What OpenVINO computes for the bundled model given NCHW input, in this process."""
    result: npt.NDArray[np.float32] = ov.Core().compile_model(build_model(), "CPU")(batch)[0]
    return result


# --- layout ----------------------------------------------------------------------------------


def test_config_layout_nhwc_nchw_takes_nhwc_requests_and_answers_as_the_model_on_nchw(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    config = _write_config(
        tmp_path / "config.json",
        {"name": "nhwc", "base_path": str(model_dir), "layout": "NHWC:NCHW"},
    )
    with running_server(["--config_path", str(config)], tmp_path) as server:
        server.wait_ready()
        assert _metadata(server, "nhwc")["inputs"][0]["shape"] == [1, 224, 224, 3]
        nhwc = np.ascontiguousarray(image.transpose(0, 2, 3, 1))
        answer = _infer(server, "nhwc", "input", nhwc).as_numpy("probabilities")
        np.testing.assert_allclose(
            answer, _in_process(nhwc.transpose(0, 3, 1, 2)), rtol=1e-5, atol=1e-6
        )
        with pytest.raises(InferenceServerException, match=r"expects shape \[1, 224, 224, 3\]"):
            _infer(server, "nhwc", "input", image)  # NCHW is no longer what clients send


def test_config_layout_object_names_an_input_and_transposes_an_output(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    config = _write_config(
        tmp_path / "config.json",
        {
            "name": "both",
            "base_path": str(model_dir),
            "layout": {"input": "NHWC:NCHW", "probabilities": "CN:NC"},
        },
    )
    with running_server(["--config_path", str(config)], tmp_path) as server:
        server.wait_ready()
        metadata = _metadata(server, "both")
        assert metadata["inputs"][0]["shape"] == [1, 224, 224, 3]
        assert metadata["outputs"][0]["shape"] == [1000, 1]
        nhwc = np.ascontiguousarray(image.transpose(0, 2, 3, 1))
        answer = _infer(server, "both", "input", nhwc).as_numpy("probabilities")
        np.testing.assert_allclose(answer, _in_process(image).T, rtol=1e-5, atol=1e-6)


def _batch_second_model(directory: Path) -> None:
    """A model whose batch is its second dimension: [features, batch] -> twice the input."""
    data = ops.parameter([4, 2], np.float32, name="x")
    doubled = ops.multiply(data, ops.constant(np.float32(2.0)))
    doubled.output(0).set_names({"y"})
    ov.save_model(ov.Model([doubled], [data], "batch-second"), str(directory / "1" / "model.xml"))


def test_a_layout_without_colon_names_the_batch_dimension_batch_size_changes(
    tmp_path: Path,
) -> None:
    _batch_second_model(tmp_path / "second")
    args = ["--model_path", str(tmp_path / "second"), "--model_name", "second"]
    with running_server([*args, "--layout", "CN", "--batch_size", "3"], tmp_path) as server:
        server.wait_ready()
        assert _metadata(server, "second")["inputs"][0]["shape"] == [4, 3]
        data = np.arange(12, dtype=np.float32).reshape(4, 3)
        np.testing.assert_array_equal(_infer(server, "second", "x", data).as_numpy("y"), 2 * data)


def test_layout_flag_with_mean_scale_and_precision_preprocesses_like_openvino(
    tmp_path: Path, model_dir: Path
) -> None:
    mean, scale = [10.0, 20.0, 30.0], [2.0, 4.0, 8.0]
    args = [
        *("--model_path", str(model_dir), "--model_name", "pre"),
        *("--layout", "NHWC:NCHW", "--precision", "uint8:fp32"),
        *("--mean", json.dumps(mean), "--scale", f"({','.join(map(str, scale))})"),
    ]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        (port,) = _metadata(server, "pre")["inputs"]
        assert (port["shape"], port["datatype"]) == ([1, 224, 224, 3], "UINT8")
        pixels = np.random.default_rng(3).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
        answer = _infer(server, "pre", "input", pixels).as_numpy("probabilities")
    per_channel = np.array(mean, dtype=np.float32), np.array(scale, dtype=np.float32)
    normalised = (pixels.astype(np.float32) - per_channel[0]) / per_channel[1]
    expected = _in_process(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(answer, expected, rtol=1e-4, atol=1e-6)


# --- shape, batch size, versions, pool, streams, device: flags and config.json ------------------


def test_model_flags_set_pool_streams_device_and_versions(tmp_path: Path, model_dir: Path) -> None:
    base = tmp_path / "two"
    shutil.copytree(model_dir, base)
    shutil.copytree(base / "1", base / "2")
    args = [
        *("--model_path", str(base), "--model_name", "two", "--target_device", "CPU"),
        *("--nireq", "3", "--plugin_config", '{"NUM_STREAMS": "2"}'),
        *("--model_version_policy", '{"all": {}}', "--metrics_enable"),
        *("--metrics_list", f"ovms_streams,{OPTIONAL_FAMILY}"),
    ]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        assert _metadata(server, "two")["versions"] == ["1", "2"]
        assert _gauge(server, OPTIONAL_FAMILY, "two") == 3
        assert _gauge(server, "ovms_streams", "two") == 2
        report = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
        assert {model["targetDevice"] for model in report["models"]} == {"CPU"}


def test_config_fields_set_shape_batch_pool_streams_device_and_versions(
    tmp_path: Path, model_dir: Path
) -> None:
    base = tmp_path / "models"
    shutil.copytree(model_dir, base / "classifier")
    shutil.copytree(base / "classifier" / "1", base / "classifier" / "2")
    _write_config(
        base / "config.json",
        # A relative base_path is read from config.json's directory, as in Model Server.
        {"name": "shaped", "base_path": "classifier", "shape": "(2,3,224,224)"},
        {
            "name": "batched",
            "base_path": "classifier",
            "batch_size": "1:4",
            "nireq": 3,
            "plugin_config": {"NUM_STREAMS": 2},
            "target_device": "CPU",
            "model_version_policy": {"specific": {"versions": [1]}},
        },
        monitoring={"metrics": {"enable": True, "metrics_list": ["ovms_streams", OPTIONAL_FAMILY]}},
    )
    # A directory given as --config_path stands for its config.json.
    with running_server(["--config_path", str(base)], tmp_path) as server:
        server.wait_ready()
        assert _metadata(server, "shaped")["inputs"][0]["shape"] == [2, 3, 224, 224]
        batched = _metadata(server, "batched")
        assert batched["versions"] == ["1"]
        assert batched["inputs"][0]["shape"] == [-1, 3, 224, 224]
        assert _gauge(server, OPTIONAL_FAMILY, "batched") == 3
        assert _gauge(server, "ovms_streams", "batched") == 2
        assert _families(server) == {"ovms_streams", OPTIONAL_FAMILY}


def test_a_model_file_as_model_path_is_served_as_version_one(
    tmp_path: Path, model_dir: Path, image: Image, expected: npt.NDArray[Any]
) -> None:
    args = ["--model_path", str(model_dir / "1" / "model.xml"), "--model_name", "file"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        assert _metadata(server, "file")["versions"] == ["1"]
        answer = _infer(server, "file", "input", image).as_numpy("probabilities")
        np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=1e-6)


def test_without_a_target_device_the_recommended_device_serves(
    tmp_path: Path, model_dir: Path
) -> None:
    recommended = default_target(ov.Core())  # a GPU where one is seen, else CPU
    with running_server(["--model_path", str(model_dir), "--model_name", "auto"], tmp_path) as s:
        s.wait_ready()
        report = httpx.get(f"{s.rest}/kubevino/diagnostics").json()
        assert [model["targetDevice"] for model in report["models"]] == [recommended]
        assert f"target_device {recommended} can use" in s.log()


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_are_off_unless_enabled(tmp_path: Path, model_dir: Path) -> None:
    with running_server(["--model_path", str(model_dir), "--model_name", "quiet"], tmp_path) as s:
        s.wait_ready()
        assert httpx.get(f"{s.rest}/metrics").status_code == 404
        assert "metrics off" in s.log()


def test_metrics_enable_serves_the_default_families_only(
    server: RunningServer, image: Image
) -> None:
    _infer(server, "classifier", "input", image)
    families = _families(server)
    assert {DEFAULT_FAMILY, "ovms_request_time_us", "kubevino_request_queue_depth"} <= families
    assert not {OPTIONAL_FAMILY, "ovms_infer_req_active"} & families


def test_metrics_list_serves_the_listed_families_only(tmp_path: Path, model_dir: Path) -> None:
    args = ["--model_path", str(model_dir), "--model_name", "listed", "--metrics_enable"]
    with running_server(
        [*args, "--metrics_list", f"{OPTIONAL_FAMILY}, {DEFAULT_FAMILY}"], tmp_path
    ) as s:
        s.wait_ready()
        assert _families(s) == {OPTIONAL_FAMILY, DEFAULT_FAMILY}


def test_config_monitoring_enables_metrics_and_picks_up_edits(
    tmp_path: Path, model_dir: Path
) -> None:
    entry = {"name": "watched", "base_path": str(model_dir)}
    config = _write_config(
        tmp_path / "config.json", entry, monitoring={"metrics": {"enable": True}}
    )
    with running_server(["--config_path", str(config)], tmp_path) as server:
        server.wait_ready()
        assert DEFAULT_FAMILY in _families(server)
        assert OPTIONAL_FAMILY not in _families(server)
        listed = {"metrics": {"enable": True, "metrics_list": [OPTIONAL_FAMILY]}}
        _write_config(config, entry, monitoring=listed)
        server.wait_for(lambda: _families(server) == {OPTIONAL_FAMILY}, 30, "listing one family")
        _write_config(config, entry, monitoring={"metrics": {"enable": False}})
        server.wait_for(
            lambda: httpx.get(f"{server.rest}/metrics").status_code == 404, 30, "metrics off"
        )


# --- logging ---------------------------------------------------------------------------------


def test_log_path_receives_the_log_lines_too(tmp_path: Path, model_dir: Path) -> None:
    log_file = tmp_path / "ovms.log"
    log_file.write_text("earlier line\n")
    args = ["--model_path", str(model_dir), "--model_name", "logged", "--log_path", str(log_file)]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        server.wait_for(lambda: "AVAILABLE" in log_file.read_text(), 10, "logging to the file")
        assert "model logged version 1 AVAILABLE" in server.log()
    assert log_file.read_text().startswith("earlier line\n")  # appended, not truncated


@pytest.mark.parametrize(
    ("level", "debug_shown", "info_shown"),
    [("ERROR", False, False), ("INFO", False, True), ("TRACE", True, True)],
)
def test_log_level_chooses_what_is_logged(
    tmp_path: Path, model_dir: Path, level: str, debug_shown: bool, info_shown: bool
) -> None:
    args = ["--model_path", str(model_dir), "--model_name", "m", "--log_level", level]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        log = server.log()
    assert ("DEBUG asyncio: Using selector" in log) is debug_shown
    assert ("INFO kubevino.models: model m version 1 AVAILABLE" in log) is info_shown


# --- OpenVINO: extension library, cache ------------------------------------------------------


def test_cpu_extension_is_handed_to_openvino(tmp_path: Path, model_dir: Path) -> None:
    """A library without OpenVINO's extension entry point: OpenVINO's own loader refuses it,
    which shows the file reached Core.add_extension before any model loaded."""
    not_an_extension = next(Path(ov.__file__).parent.glob("libs/libtbb.so*"))
    args = ["--model_path", str(model_dir), "--model_name", "m"]
    with running_server(
        [*args, "--cpu_extension", str(not_an_extension)], tmp_path, wait_live=False
    ) as server:
        assert server.process.wait(60) == 1
    message = server.termination_log.read_text()
    assert message.startswith(f"kubevino-serve cannot start: --cpu_extension {not_an_extension}")
    assert "create_extensions" in message  # OpenVINO looked for the extension's entry point


def test_cache_dir_caches_every_model_allow_cache_false_included(
    tmp_path: Path, model_dir: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    config = _write_config(
        tmp_path / "config.json",
        {"name": "cached", "base_path": str(model_dir), "allow_cache": False},
    )
    args = ["--config_path", str(config), "--cache_dir", str(cache)]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
    assert [path.suffix for path in cache.iterdir()] == [".blob"]


# --- network ---------------------------------------------------------------------------------


def test_bind_addresses_take_a_comma_separated_list(tmp_path: Path, model_dir: Path) -> None:
    args = [
        *("--model_path", str(model_dir), "--model_name", "m"),
        *("--rest_bind_address", "127.0.0.1,127.0.0.2"),
        *("--grpc_bind_address", "127.0.0.1,127.0.0.2"),
        *("--grpc_workers", "1"),
    ]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        for host in ("127.0.0.1", "127.0.0.2"):
            assert httpx.get(f"http://{host}:{server.rest_port}/v2/health/ready").is_success
            client = triton_grpc.InferenceServerClient(f"{host}:{server.grpc_port}")
            assert client.is_server_ready()
            client.close()


def test_grpc_channel_arguments_reach_the_grpc_server(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    limit = "grpc.max_receive_message_length=4096"
    args = ["--model_path", str(model_dir), "--model_name", "m", "--grpc_channel_arguments", limit]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        with pytest.raises(InferenceServerException) as caught:
            _infer(server, "m", "input", image)  # 600 kB, over the 4 kB the argument allows
    assert caught.value.status() == str(grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.fixture(scope="module")
def cors_server(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    args = [
        *("--model_path", str(model_dir), "--model_name", "m", "--allow_credentials"),
        *("--allowed_origins", "https://ui.example", "--allowed_methods", "GET,POST"),
        *("--allowed_headers", "Content-Type,X-Trace"),
    ]
    with running_server(args, tmp_path_factory.mktemp("cors")) as server:
        yield server


def test_cors_headers_default_to_any_origin_without_credentials(server: RunningServer) -> None:
    headers = httpx.get(f"{server.rest}/v2/health/live").headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


def test_allow_credentials_is_on_every_rest_response(cors_server: RunningServer) -> None:
    for response in (
        httpx.get(f"{cors_server.rest}/v2/models/m"),
        httpx.get(f"{cors_server.rest}/v2/models/unknown"),  # errors too
    ):
        assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_allowed_origins_methods_and_headers_answer_a_preflight(cors_server: RunningServer) -> None:
    preflight = httpx.options(
        f"{cors_server.rest}/v2/models/m/infer",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type,X-Trace"


def test_a_refused_field_added_while_serving_is_not_applied(
    tmp_path: Path, model_dir: Path
) -> None:
    entry = {"name": "kept", "base_path": str(model_dir)}
    config = _write_config(tmp_path / "config.json", entry)
    with running_server(["--config_path", str(config)], tmp_path) as server:
        server.wait_ready()
        _write_config(config, {**entry, "stateful": True})
        server.wait_for(
            lambda: "not applied, keeping the running one" in server.log(), 30, "refusing it"
        )
        assert "model_config_list[0].config.stateful configures stateful models" in server.log()
        assert httpx.get(f"{server.rest}/v2/models/kept/ready").status_code == 200
