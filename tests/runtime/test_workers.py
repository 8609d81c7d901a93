"""``--workers``: several server processes behind the same ports, counted and stopped as one."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as triton_grpc

from tests.runtime.serving import RunningServer, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]


def _workers_of(server: RunningServer) -> list[int]:
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _metric(server: RunningServer, prefix: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {prefix}")


def _alive(pid: int) -> bool:
    """Running, not merely a zombie its supervisor has yet to reap."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _args(model_dir: Path) -> list[str]:
    return [
        *("--model_path", str(model_dir), "--model_name", "shared", "--nireq", "1"),
        *("--metrics_enable", "--metrics_list", "ovms_requests_success,ovms_infer_req_queue_size"),
    ]


def test_workers_share_the_ports_answer_alike_and_are_counted_together(
    tmp_path: Path, model_dir: Path, image: Image, expected: npt.NDArray[Any]
) -> None:
    with running_server([*_args(model_dir), "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        workers = _workers_of(server)
        assert len(workers) == 2
        body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "data": image.ravel().tolist(),
                }
            ]
        }
        # A new connection per request: the kernel spreads connections over the workers.
        for _ in range(12):
            response = httpx.post(f"{server.rest}/v2/models/shared/infer", json=body)
            assert response.status_code == 200, response.text
            logits = np.array(response.json()["outputs"][0]["data"], dtype=np.float32)
            np.testing.assert_allclose(logits, expected.ravel(), rtol=1e-5, atol=1e-6)
        for _ in range(6):
            client = triton_grpc.InferenceServerClient(server.grpc)
            tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
            tensor.set_data_from_numpy(image)
            result = client.infer("shared", [tensor]).as_numpy("probabilities")
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
            client.close()

        # Whichever worker answers the scrape reports every worker's counts and pools.
        success = 'ovms_requests_success{{api="KServe",interface="{}",method="ModelInfer"'
        rest, grpc = success.format("REST"), success.format("gRPC")
        for _ in range(5):
            assert _metric(server, rest) == 12
            assert _metric(server, grpc) == 6
            assert _metric(server, 'ovms_infer_req_queue_size{name="shared"') == 2

        assert server.stop() == 0
        assert not [pid for pid in workers if _alive(pid)]
        assert server.log().count("stopped") == 2


def test_a_worker_that_dies_stops_the_group_with_its_status(
    tmp_path: Path, model_dir: Path
) -> None:
    with running_server([*_args(model_dir), "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        first, second = _workers_of(server)
        os.kill(first, signal.SIGKILL)
        assert server.process.wait(30) == 128 + signal.SIGKILL
        deadline = time.monotonic() + 10
        while _alive(second) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(second)
        assert f"worker {first} ended with status -9 while serving" in server.log()
