"""Dynamic batching (``--max_dynamic_batch``, ``--dynamic_batch_delay_us``): requests that wait
for the engine at the same time run as one inference, each client still gets exactly its own
rows, and nothing about a request changes for the client: the answers equal in-process
OpenVINO's for that request alone."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import openvino as ov
import openvino.opset13 as ops
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]
# Long enough that every request of a test has arrived before a batch is formed.
WAIT_FOR_ALL_US = "1000000"


def _batching_args(model_dir: Path, name: str, *extra: str) -> list[str]:
    return [
        *("--model_path", str(model_dir), "--model_name", name, "--nireq", "1"),
        *("--max_dynamic_batch", "8", "--metrics_enable"),
        *extra,
    ]


def _images(count: int, shape: tuple[int, ...] = (1, 3, 224, 224), seed: int = 0) -> list[Image]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for _ in range(count)]


def _in_process(model_dir: Path, images: list[Image]) -> list[npt.NDArray[Any]]:
    """Each request's answer from OpenVINO alone: the model as written, one request at a time."""
    model = ov.Core().read_model(str(model_dir / "1" / "model.xml"))
    model.reshape({0: ov.PartialShape("[?,3,?,?]")})
    compiled = ov.Core().compile_model(model, "CPU")
    return [compiled(image)[0] for image in images]


def _all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls from threads released together, so they reach the server together."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # reported by the assertion on results
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _grpc_call(server: RunningServer, name: str, image: Image) -> Callable[[], Any]:
    def call() -> Any:
        client = triton_grpc.InferenceServerClient(server.grpc)
        tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        return client.infer(name, [tensor]).as_numpy("probabilities")

    return call


def _rest_call(server: RunningServer, name: str, image: Image) -> Callable[[], Any]:
    def call() -> Any:
        client = triton_http.InferenceServerClient(f"127.0.0.1:{server.rest_port}")
        tensor = triton_http.InferInput("input", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image, binary_data=True)
        return client.infer(name, [tensor]).as_numpy("probabilities")

    return call


def _batches(server: RunningServer, name: str) -> tuple[float, float]:
    """How many inferences ran and how many requests they held, from the server's metrics."""
    found = {"count": 0.0, "sum": 0.0}
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        for kind in found:
            if line.startswith(f"kubevino_batch_requests_{kind}{{") and f'name="{name}"' in line:
                found[kind] += float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


def _batching_report(server: RunningServer) -> dict[str, Any]:
    (model,) = httpx.get(f"{server.rest}/kubevino/diagnostics").json()["models"]
    report: dict[str, Any] = model["dynamicBatching"]
    return report


def _assert_each_got_its_own(results: list[Any], expected: list[npt.NDArray[Any]]) -> None:
    assert [type(result).__name__ for result in results] == ["ndarray"] * len(expected)
    for result, wanted in zip(results, expected, strict=True):
        np.testing.assert_allclose(result, wanted, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 3])
def test_requests_waiting_together_run_as_one_inference_and_each_gets_its_own_rows(
    tmp_path: Path, model_dir: Path, workers: int
) -> None:
    images = _images(8)
    expected = _in_process(model_dir, images)
    args = _batching_args(
        model_dir,
        "joined",
        *("--batch_size", "-1", "--dynamic_batch_delay_us", WAIT_FOR_ALL_US),
        *("--workers", str(workers)),
    )
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        assert _batching_report(server) == {"maxBatch": 8, "reason": "up to 8 rows per inference"}
        calls = [_grpc_call(server, "joined", image) for image in images[:4]]
        calls += [_rest_call(server, "joined", image) for image in images[4:]]
        results = _all_at_once(calls)
        _assert_each_got_its_own(results, expected)
        inferences, requests = _batches(server, "joined")
        # All eight arrive within the second the first one waits: one inference; two if the
        # machine delayed a thread past that second.
        assert requests == 8
        assert inferences <= 2


def test_only_requests_of_one_shape_join_and_a_request_of_several_rows_gets_all_of_them(
    tmp_path: Path, model_dir: Path
) -> None:
    small = _images(3, (1, 3, 64, 64), seed=1) + _images(1, (2, 3, 64, 64), seed=2)
    large = _images(2, (1, 3, 96, 96), seed=3)
    images = small + large
    expected = _in_process(model_dir, images)
    args = _batching_args(
        model_dir,
        "shapes",
        *("--shape", "(-1,3,-1,-1)", "--dynamic_batch_delay_us", WAIT_FOR_ALL_US),
    )
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        results = _all_at_once([_grpc_call(server, "shapes", image) for image in images])
        _assert_each_got_its_own(results, expected)
        assert results[3].shape == (2, 1000)
        inferences, requests = _batches(server, "shapes")
        assert requests == 6
        assert 2 <= inferences <= 4  # the 64x64 ones together, the 96x96 ones together


def test_under_load_waiting_requests_join_without_any_delay(
    tmp_path: Path, model_dir: Path
) -> None:
    images = _images(16, seed=4)
    expected = _in_process(model_dir, images)
    args = _batching_args(model_dir, "busy", "--batch_size", "-1")
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        results = _all_at_once([_grpc_call(server, "busy", image) for image in images])
        _assert_each_got_its_own(results, expected)
        inferences, requests = _batches(server, "busy")
        # One infer request: while it runs, the others wait and then go together.
        assert requests == 16
        assert inferences < 16


@pytest.mark.parametrize("asked", [None, "1"])
def test_by_default_a_cpu_model_with_a_dynamic_batch_joins_waiting_requests_and_1_turns_it_off(
    tmp_path: Path, model_dir: Path, asked: str | None
) -> None:
    images = _images(16, seed=7)
    expected = _in_process(model_dir, images)
    args = [
        *("--model_path", str(model_dir), "--model_name", "default", "--nireq", "1"),
        *("--batch_size", "-1", "--metrics_enable"),
        *(["--max_dynamic_batch", asked] if asked else []),
    ]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        report = _batching_report(server)
        results = _all_at_once([_grpc_call(server, "default", image) for image in images])
        _assert_each_got_its_own(results, expected)
        inferences, requests = _batches(server, "default")
        assert requests == 16
        if asked is None:
            assert report == {
                "maxBatch": 8,
                "reason": "up to 8 rows per inference (--max_dynamic_batch auto)",
            }
            assert inferences < 16
        else:
            assert report["maxBatch"] == 1
            assert inferences == 16


def test_a_client_that_leaves_while_waiting_for_its_batch_is_dropped_from_it(
    tmp_path: Path, model_dir: Path
) -> None:
    images = _images(4, seed=5)
    expected = _in_process(model_dir, images)
    args = _batching_args(
        model_dir, "leaving", "--batch_size", "-1", "--dynamic_batch_delay_us", WAIT_FOR_ALL_US
    )
    with running_server(args, tmp_path) as server:
        server.wait_ready()

        def impatient() -> Any:
            client = triton_grpc.InferenceServerClient(server.grpc)
            tensor = triton_grpc.InferInput("input", [1, 3, 224, 224], "FP32")
            tensor.set_data_from_numpy(images[0])
            return client.infer("leaving", [tensor], client_timeout=0.2)

        calls = [impatient] + [_grpc_call(server, "leaving", image) for image in images[1:]]
        results = _all_at_once(calls)
        assert isinstance(results[0], Exception)
        assert "Deadline" in str(results[0])
        _assert_each_got_its_own(results[1:], expected[1:])
        _, requests = _batches(server, "leaving")
        assert requests == 3


def test_a_model_without_a_batch_dimension_is_served_one_request_at_a_time_and_says_why(
    tmp_path: Path, model_dir: Path
) -> None:
    images = _images(4, seed=6)
    expected = _in_process(model_dir, images)
    with running_server(_batching_args(model_dir, "fixed"), tmp_path) as server:
        server.wait_ready()
        report = _batching_report(server)
        assert report["maxBatch"] == 1
        assert "first dimension is fixed at 1" in report["reason"]
        assert "batch_size -1" in report["reason"]
        results = _all_at_once([_grpc_call(server, "fixed", image) for image in images])
        _assert_each_got_its_own(results, expected)
        assert _batches(server, "fixed") == (4, 4)


def _rows_doubling_model(directory: Path) -> Path:
    """A model whose first output dimension is not its batch: ``[n, 4]`` in, ``[2n, 2]`` out."""
    rows = ops.parameter([-1, 4], np.float32, name="rows")
    halves = ops.reshape(rows, ops.constant(np.array([-1, 2], dtype=np.int64)), False)
    halves.output(0).set_names({"halves"})
    target = directory / "1" / "model.xml"
    target.parent.mkdir(parents=True)
    ov.save_model(ov.Model([halves], [rows], "halves"), str(target))
    return directory


def test_a_model_whose_outputs_do_not_follow_the_batch_stops_batching_and_answers_each_alone(
    tmp_path: Path,
) -> None:
    model_dir = _rows_doubling_model(tmp_path / "halves")
    inputs = [np.arange(4, dtype=np.float32).reshape(1, 4) + 10 * n for n in range(4)]
    args = _batching_args(model_dir, "halves", "--dynamic_batch_delay_us", WAIT_FOR_ALL_US)
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        assert _batching_report(server)["maxBatch"] == 8

        def call(values: Image) -> Callable[[], Any]:
            def infer() -> Any:
                client = triton_grpc.InferenceServerClient(server.grpc)
                tensor = triton_grpc.InferInput("rows", [1, 4], "FP32")
                tensor.set_data_from_numpy(values)
                return client.infer("halves", [tensor]).as_numpy("halves")

            return infer

        results = _all_at_once([call(values) for values in inputs])
        _assert_each_got_its_own(results, [values.reshape(2, 2) for values in inputs])
        report = _batching_report(server)
        assert report["maxBatch"] == 1
        assert "halves's first dimension does not follow the batch" in report["reason"]
        assert "dynamic batching is off" in server.log()
