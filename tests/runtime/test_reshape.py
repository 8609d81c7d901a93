"""batch_size and shape reshape the model before compiling, as in Model Server."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import openvino as ov
import pytest
import tritonclient.grpc as triton_grpc

from kubevino_runtime.demo_model import build_model
from tests.runtime.serving import running_server

pytestmark = pytest.mark.runtime


def test_batch_size_reshapes_even_a_model_without_a_layout(
    tmp_path: Path, image: npt.NDArray[np.float32]
) -> None:
    model = build_model()
    model.get_parameters()[0].set_layout(ov.Layout())  # no layout: batch is the first dim
    ov.save_model(model, str(tmp_path / "plain" / "1" / "model.xml"), compress_to_fp16=False)
    args = ["--model_path", str(tmp_path / "plain"), "--model_name", "plain", "--batch_size", "4"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        metadata = httpx.get(f"{server.rest}/v2/models/plain").json()
        assert metadata["inputs"][0]["shape"] == [4, 3, 224, 224]
        batch = np.repeat(image, 4, axis=0)
        client = triton_grpc.InferenceServerClient(server.grpc)
        tensor = triton_grpc.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        output = client.infer("plain", [tensor]).as_numpy("probabilities")
    in_process = build_model()
    ov.set_batch(in_process, 4)
    expected = ov.Core().compile_model(in_process, "CPU")(batch)[0]
    np.testing.assert_array_equal(output, expected)


def test_shape_in_model_server_syntax_reshapes_with_ranges(tmp_path: Path, model_dir: Path) -> None:
    args = ["--model_path", str(model_dir), "--model_name", "ranged", "--shape", "(1:4,3,224,224)"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        metadata = httpx.get(f"{server.rest}/v2/models/ranged").json()
        assert metadata["inputs"][0]["shape"] == [-1, 3, 224, 224]
        images = np.random.default_rng(7).random((3, 3, 224, 224), dtype=np.float32)
        client = triton_grpc.InferenceServerClient(server.grpc)

        def probabilities(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            tensor = triton_grpc.InferInput("input", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            result: npt.NDArray[np.float32] = client.infer("ranged", [tensor]).as_numpy(
                "probabilities"
            )
            return result

        three = probabilities(images)
        assert three.shape == (3, 1000)
        # The same infer requests then take other batch sizes, each with its own result.
        for _ in range(4):
            one = probabilities(images[1:2])
            assert one.shape == (1, 1000)
            np.testing.assert_allclose(one[0], three[1], rtol=1e-4, atol=1e-6)
