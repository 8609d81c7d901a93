"""Readiness, hot reload, overload, shutdown and start-up refusals of the real server."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as triton_grpc

from kubevino_runtime.demo_model import write_model
from tests.runtime.serving import RunningServer, kserve_binary_request, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]


async def _burst(url: str, image: Image, count: int) -> list[tuple[int, str]]:
    body, headers = kserve_binary_request(image)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        responses = await asyncio.gather(
            *(client.post(url, content=body, headers=headers) for _ in range(count))
        )
    return [(r.status_code, r.text if r.status_code != 200 else "") for r in responses]


def _metric(server: RunningServer, prefix: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _versions(server: RunningServer, name: str) -> list[str]:
    response = httpx.get(f"{server.rest}/v2/models/{name}")
    if response.status_code != 200:
        return []
    versions: list[str] = response.json()["versions"]
    return versions


def test_ready_only_once_every_configured_version_is_loaded(tmp_path: Path) -> None:
    empty = tmp_path / "later"
    empty.mkdir()
    with running_server(["--model_path", str(empty), "--model_name", "later"], tmp_path) as server:
        not_ready = httpx.get(f"{server.rest}/v2/health/ready")
        assert not_ready.status_code == 503
        assert "no version found" in " ".join(not_ready.json()["reasons"])
        write_model(empty)  # a version appears: picked up without a restart
        server.wait_ready(timeout=60)
        assert _versions(server, "later") == ["1"]


def test_new_and_removed_versions_are_picked_up_without_a_restart(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    base = tmp_path / "hot"
    shutil.copytree(model_dir, base)
    args = ["--model_path", str(base), "--model_name", "hot", "--nireq", "2"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        url = f"{server.rest}/v2/models/hot/infer"

        async def traffic_during_swap() -> list[tuple[int, str]]:
            burst = asyncio.ensure_future(_burst(url, image, 24))
            await asyncio.sleep(0.05)
            shutil.copytree(base / "1", base / "2")  # latest policy: 2 replaces 1
            return await burst

        results = asyncio.run(traffic_during_swap())
        assert results == [(200, "")] * 24  # no in-flight request is dropped by the swap
        server.wait_for(lambda: _versions(server, "hot") == ["2"], 30, "serving version 2")
        assert httpx.get(f"{server.rest}/v2/models/hot/versions/1").status_code == 404
        shutil.rmtree(base / "2")
        (base / "3").mkdir()
        shutil.copytree(base / "1", base / "3", dirs_exist_ok=True)
        server.wait_for(lambda: _versions(server, "hot") == ["3"], 30, "serving version 3")

        def states() -> dict[str, str]:
            status = httpx.get(f"{server.rest}/v1/models/hot").json()["model_version_status"]
            return {entry["version"]: entry["state"] for entry in status}

        server.wait_for(
            lambda: states() == {"1": "END", "2": "END", "3": "AVAILABLE"},
            30,
            "reporting versions 1 and 2 as ended",
        )


def test_a_request_still_uploading_when_its_version_is_replaced_runs_on_that_version(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    base = tmp_path / "swap"
    shutil.copytree(model_dir, base)
    args = ["--model_path", str(base), "--model_name", "swap"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        body, headers = kserve_binary_request(image)
        host, port = server.rest.removeprefix("http://").rsplit(":", 1)
        head = "".join(
            [
                "POST /v2/models/swap/infer HTTP/1.1\r\n",
                f"Host: {host}\r\n",
                f"Content-Length: {len(body)}\r\n",
                *(f"{key}: {value}\r\n" for key, value in headers.items()),
                "Connection: close\r\n\r\n",
            ]
        ).encode()
        with socket.create_connection((host, int(port))) as upload:
            upload.sendall(head + body[:100])  # the server has resolved version 1 and waits
            time.sleep(0.5)
            shutil.copytree(base / "1", base / "2")
            server.wait_for(lambda: _versions(server, "swap") == ["2"], 30, "serving version 2")
            upload.sendall(body[100:])
            reply = b""
            while chunk := upload.recv(1 << 16):
                reply += chunk
        status_line, _, rest = reply.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", reply[:400]
        _, _, payload = rest.partition(b"\r\n\r\n")
        assert b'"model_version": "1"' in payload  # answered by the version it asked


def test_overload_is_refused_as_retriable_and_the_server_recovers(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    args = [
        "--model_path",
        str(model_dir),
        "--model_name",
        "busy",
        "--nireq",
        "1",
        "--max_queue",
        "2",
        "--metrics_enable",
    ]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        results = asyncio.run(_burst(f"{server.rest}/v2/models/busy/infer", image, 40))
        statuses = [status for status, _ in results]
        assert set(statuses) == {200, 503}, statuses  # refused, never a crash or another 5xx
        assert all("is overloaded" in text for status, text in results if status == 503)
        refused = statuses.count(503)
        failures = 'ovms_requests_fail{api="KServe",interface="REST",method="ModelInfer"'
        assert _metric(server, failures) == refused
        body, headers = kserve_binary_request(image)
        after = httpx.post(f"{server.rest}/v2/models/busy/infer", content=body, headers=headers)
        assert after.status_code == 200  # recovered once the burst is over
        assert server.process.poll() is None


def test_sigterm_drains_in_flight_requests_and_exits_zero(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    # Batches of 32 on one thread: each inference takes long enough to SIGTERM mid-flight.
    args = [
        "--model_path",
        str(model_dir),
        "--model_name",
        "drain",
        "--nireq",
        "1",
        "--batch_size",
        "32",
        "--plugin_config",
        '{"INFERENCE_NUM_THREADS": 1}',
        "--metrics_enable",
    ]
    batch = np.repeat(image, 32, axis=0)
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        client = triton_grpc.InferenceServerClient(server.grpc)
        tensor = triton_grpc.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        results: list[Any] = []

        def done(result: Any, error: Any) -> None:
            results.append(error or result)

        for _ in range(6):
            client.async_infer("drain", [tensor], callback=done)
        in_server = 'ovms_current_requests{name="drain"'

        def all_arrived_several_in_flight() -> bool:
            finished = len(results)
            current = _metric(server, in_server)
            return current >= 2 and current + finished >= 6

        # SIGTERM once every request has reached the server and several are still in it.
        server.wait_for(all_arrived_several_in_flight, 30, "holding the requests")
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)
        assert code == 0
        deadline = time.monotonic() + 10
        while len(results) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        failures = [r for r in results if isinstance(r, Exception)]
        assert len(results) == 6 and failures == [], failures
        assert "shutting down" in server.log() and "stopped" in server.log()


def test_a_device_current_openvino_cannot_drive_fails_at_start_naming_the_alternative(
    tmp_path: Path, model_dir: Path
) -> None:
    args = [
        "--model_path",
        str(model_dir),
        "--model_name",
        "stick",
        "--target_device",
        "MULTI:MYRIAD,CPU",
    ]
    with running_server(args, tmp_path, wait_live=False) as server:
        assert server.process.wait(60) == 1
    message = (tmp_path / "termination-log").read_text()
    assert "MYRIAD plugin left OpenVINO after 2022.3" in message
    assert "Model Server 2022.3" in message and "spec.serving.runtime: ModelServer" in message


def test_config_file_serves_several_models_and_reloads_on_change(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    config = tmp_path / "config.json"

    def write(names: list[str]) -> None:
        entries = [
            {
                "config": {
                    "name": name,
                    "base_path": str(model_dir),
                    "target_device": "CPU",
                    "plugin_config": {"PERFORMANCE_HINT": "LATENCY"},
                    "nireq": 2,
                    "model_version_policy": {"all": {}},
                }
            }
            for name in names
        ]
        config.write_text(json.dumps({"model_config_list": entries}))

    write(["first", "second"])
    with running_server(["--config_path", str(config)], tmp_path) as server:
        server.wait_ready()
        assert _versions(server, "first") == ["1"] and _versions(server, "second") == ["1"]
        time.sleep(0.05)
        write(["first", "third"])
        server.wait_for(lambda: _versions(server, "third") == ["1"], 30, "serving third")
        server.wait_for(lambda: _versions(server, "second") == [], 30, "dropping second")
        body, headers = kserve_binary_request(image)
        response = httpx.post(f"{server.rest}/v2/models/third/infer", content=body, headers=headers)
        assert response.status_code == 200
        config.write_text("{broken")
        server.wait_for(
            lambda: "not applied, keeping the running one" in server.log(),
            30,
            "refusing the broken config",
        )
        assert _versions(server, "third") == ["1"]  # a bad edit keeps the running config


def test_with_a_model_wait_a_model_that_never_appears_ends_the_server_with_the_reason(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "models" / "missing"
    empty.mkdir(parents=True)
    args = ["--model_path", str(empty), "--model_name", "missing", "--model_wait_seconds", "1"]
    with running_server(args, tmp_path) as server:
        assert server.process.wait(60) == 1
    message = (tmp_path / "termination-log").read_text()
    assert "gave up after 1 s" in message
    assert f"model missing: no version found in {empty}" in message


def test_with_a_model_wait_a_model_that_loads_keeps_serving(
    tmp_path: Path, model_dir: Path
) -> None:
    args = ["--model_path", str(model_dir), "--model_name", "m", "--model_wait_seconds", "1"]
    with running_server(args, tmp_path) as server:
        server.wait_ready()
        time.sleep(1.5)
        assert server.process.poll() is None
