"""``--workers N``: one engine process holds the one compiled copy of each model version; N
front-end processes share the ports, speak every protocol and hand tensors to it through
shared memory. The pod stops whole when any of them dies, and SIGTERM drains them all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import ovmsclient
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from tests.runtime.serving import RunningServer, kserve_binary_request, running_server

pytestmark = pytest.mark.runtime

Image = npt.NDArray[np.float32]
CPU_PLUGIN = "libopenvino_intel_cpu_plugin.so"


def _front_ends_of(server: RunningServer) -> list[int]:
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _maps_cpu_plugin(pid: int) -> bool:
    """Whether OpenVINO's CPU plugin is loaded in the process: only a process that compiles
    for CPU loads it (a front end never creates an OpenVINO Core)."""
    return CPU_PLUGIN in Path(f"/proc/{pid}/maps").read_text()


def _openvino_libraries(pid: int) -> set[str]:
    """The OpenVINO and OpenVINO GenAI shared libraries mapped in the process: importing
    ``openvino`` maps libopenvino and _pyopenvino, ``openvino_genai`` (which the generative
    modules import) its own; a lean front end maps none."""
    names = {
        Path(line.split()[-1]).name
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if "/" in line
    }
    return {name for name in names if "openvino" in name}


def _metric(server: RunningServer, prefix: str) -> float:
    for line in httpx.get(f"{server.rest}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _alive(pid: int) -> bool:
    """Running, not merely a zombie its parent has yet to reap."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _args(model_dir: Path, name: str = "shared") -> list[str]:
    return [
        *("--model_path", str(model_dir), "--model_name", name, "--nireq", "1"),
        *(
            "--metrics_enable",
            "--metrics_list",
            "ovms_requests_success,ovms_infer_req_queue_size,ovms_current_requests",
        ),
    ]


def _slow_args(model_dir: Path, name: str) -> list[str]:
    # Batches of 32 on one thread: each inference takes long enough to act mid-flight.
    return [
        *_args(model_dir, name),
        *("--batch_size", "32", "--plugin_config", '{"INFERENCE_NUM_THREADS": 1}'),
    ]


def test_four_front_ends_share_one_compiled_copy_and_every_protocol_matches_in_process(
    tmp_path: Path, model_dir: Path, image: Image, expected: npt.NDArray[Any]
) -> None:
    with running_server([*_args(model_dir), "--workers", "4"], tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        assert len(front_ends) == 4
        diagnostics = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
        assert diagnostics["processes"] == {
            "engine": server.process.pid,
            "frontEnds": front_ends,
        }
        assert [m["enginePid"] for m in diagnostics["models"]] == [server.process.pid]
        # OpenVINO's own evidence: its CPU plugin is loaded in the engine process only.
        assert _maps_cpu_plugin(server.process.pid)
        assert not [pid for pid in front_ends if _maps_cpu_plugin(pid)]
        # A front end has no OpenVINO at all: forked from the engine process before it
        # imported OpenVINO, none of its libraries nor its heap (bench/runtime_memory.py).
        assert "libopenvino.so" in " ".join(_openvino_libraries(server.process.pid))
        assert {pid: _openvino_libraries(pid) for pid in front_ends} == {
            pid: set() for pid in front_ends
        }
        assert sorted(Path(f"/proc/{pid}/comm").read_text() for pid in front_ends) == [
            f"kubevino-fe {index}\n" for index in range(4)
        ]

        def close_to_in_process(result: Any) -> None:
            np.testing.assert_allclose(
                np.asarray(result, np.float32).reshape(expected.shape),
                expected,
                rtol=1e-5,
                atol=1e-6,
            )

        json_body = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "data": image.ravel().tolist(),
                }
            ]
        }
        # A new connection per request: the kernel spreads connections over the front ends.
        answered_by = set()
        for _ in range(8):
            answered_by.add(httpx.get(f"{server.rest}/kubevino/diagnostics").json()["answeredBy"])
            response = httpx.post(f"{server.rest}/v2/models/shared/infer", json=json_body)
            assert response.status_code == 200, response.text
            close_to_in_process(response.json()["outputs"][0]["data"])
            rest_client = triton_http.InferenceServerClient(server.rest.removeprefix("http://"))
            binary = triton_http.InferInput("input", list(image.shape), "FP32")
            binary.set_data_from_numpy(image, binary_data=True)
            close_to_in_process(rest_client.infer("shared", [binary]).as_numpy("probabilities"))
            rest_client.close()
            grpc_client = triton_grpc.InferenceServerClient(server.grpc)
            tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
            tensor.set_data_from_numpy(image)
            close_to_in_process(grpc_client.infer("shared", [tensor]).as_numpy("probabilities"))
            grpc_client.close()
            tfs_grpc = ovmsclient.make_grpc_client(server.grpc)
            close_to_in_process(tfs_grpc.predict({"input": image}, "shared"))
            tfs_rest = ovmsclient.make_http_client(server.rest.removeprefix("http://"))
            close_to_in_process(tfs_rest.predict({"input": image}, "shared"))
        assert len(answered_by) >= 2 and answered_by <= set(front_ends)

        # Whichever front end answers the scrape reports every front end's counts, and the
        # one infer-request pool of the one engine.
        success = 'ovms_requests_success{{api="{}",interface="{}",method="{}"'
        for _ in range(5):
            assert _metric(server, success.format("KServe", "REST", "ModelInfer")) == 16
            assert _metric(server, success.format("KServe", "gRPC", "ModelInfer")) == 8
            assert _metric(server, success.format("TensorFlowServing", "gRPC", "Predict")) == 8
            assert _metric(server, success.format("TensorFlowServing", "REST", "Predict")) == 8
            assert _metric(server, 'ovms_infer_req_queue_size{name="shared"') == 1

        assert server.stop() == 0
        assert not [pid for pid in front_ends if _alive(pid)]
        assert server.log().count("]: stopped") == 4  # each front end's last line


def _connection_owner(front_ends: list[int], client_port: int, server_port: int) -> int:
    """The front end that accepted the TCP connection from ``client_port`` to
    ``server_port`` (waiting for it to be accepted)."""
    owner: list[int] = []

    def accepted() -> bool:
        owner.extend(_holding(front_ends, client_port, server_port))
        return bool(owner)

    assert _wait_until(accepted, 30), "no front end accepted the connection"
    return owner[0]


def _holding(front_ends: list[int], client_port: int, server_port: int) -> list[int]:
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    holding = []
    for pid in front_ends:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if str(fd.readlink()) == f"socket:[{inode}]":
                    holding.append(pid)
            except OSError:
                continue
    return holding


def _raw_infer(server: RunningServer, model: str, image: Image) -> socket.socket:
    """A KServe REST infer request on a connection of its own, sent but for its last byte
    (``_finish`` sends it); read the reply from the returned socket."""
    body, headers = kserve_binary_request(image)
    host, port = server.rest.removeprefix("http://").rsplit(":", 1)
    head = "".join(
        [
            f"POST /v2/models/{model}/infer HTTP/1.1\r\n",
            f"Host: {host}\r\n",
            f"Content-Length: {len(body)}\r\n",
            *(f"{key}: {value}\r\n" for key, value in headers.items()),
            "Connection: close\r\n\r\n",
        ]
    ).encode()
    connection = socket.create_connection((host, int(port)))
    connection.sendall(head + body[:-1])
    _last_bytes[connection.fileno()] = body[-1:]
    return connection


_last_bytes: dict[int, bytes] = {}


def _finish(connection: socket.socket) -> None:
    connection.sendall(_last_bytes.pop(connection.fileno()))


def _reply(connection: socket.socket) -> bytes:
    reply = b""
    with connection:
        connection.settimeout(120)
        try:
            while chunk := connection.recv(1 << 16):
                reply += chunk
        except ConnectionResetError:
            pass
    return reply


def test_a_server_started_without_the_entry_point_starts_a_lean_launcher_itself(
    tmp_path: Path, model_dir: Path, image: Image, expected: npt.NDArray[Any]
) -> None:
    """``kubevino_runtime.server`` run directly (an install whose script predates
    ``entry``) has imported OpenVINO before it could fork: its launcher is a fresh
    interpreter, and its front ends are as lean."""
    with running_server(
        [*_args(model_dir), "--workers", "2"], tmp_path, module="kubevino_runtime.server"
    ) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        assert len(front_ends) == 2
        assert {pid: _openvino_libraries(pid) for pid in front_ends} == {
            pid: set() for pid in front_ends
        }
        for _ in range(4):  # new connections: the kernel spreads them over the front ends
            client = triton_http.InferenceServerClient(server.rest.removeprefix("http://"))
            binary = triton_http.InferInput("input", list(image.shape), "FP32")
            binary.set_data_from_numpy(image, binary_data=True)
            result = client.infer("shared", [binary]).as_numpy("probabilities")
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
            client.close()
        assert server.stop() == 0
        assert not [pid for pid in front_ends if _alive(pid)]


def test_a_server_that_cannot_start_leaves_no_launcher_behind(tmp_path: Path) -> None:
    """The launcher is forked before the config is read; a server that stops there ends it."""
    config = tmp_path / "config.json"
    config.write_text("{not json")
    with running_server(
        ["--config_path", str(config), "--workers", "2"], tmp_path, wait_live=False
    ) as server:
        assert server.process.wait(60) == 1
    left = []
    for entry in Path("/proc").iterdir():
        try:
            if str(config).encode() in (entry / "cmdline").read_bytes():
                left.append(entry.name)
        except OSError:
            continue
    assert left == []
    assert "Traceback" not in server.log()


def test_a_front_end_killed_mid_request_stops_the_server_with_its_status(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    batch = np.repeat(image, 32, axis=0)
    with running_server([*_slow_args(model_dir, "slow"), "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        connection = _raw_infer(server, "slow", batch)
        owner = _connection_owner(front_ends, connection.getsockname()[1], server.rest_port)
        _finish(connection)
        in_server = 'ovms_current_requests{name="slow"'
        server.wait_for(lambda: _metric(server, in_server) == 1, 30, "holding the request")
        os.kill(owner, signal.SIGKILL)
        assert server.process.wait(60) == 128 + signal.SIGKILL
        assert _wait_until(lambda: not any(_alive(pid) for pid in front_ends), 10)
        assert f"front end {owner} ended with status -9 while serving" in server.log()
        assert not _reply(connection).startswith(b"HTTP/1.1 200")  # its client saw it fail


def test_a_dead_engine_process_takes_its_front_ends_with_it(
    tmp_path: Path, model_dir: Path
) -> None:
    with running_server([*_args(model_dir), "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        server.process.kill()
        server.process.wait(30)
        # The pod's process is gone; its front ends must not go on serving without engines.
        assert _wait_until(lambda: not any(_alive(pid) for pid in front_ends), 30)
        assert server.log().count("the engine process is gone") == 2


def test_sigterm_drains_in_flight_requests_across_front_ends_and_the_engine(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    batch = np.repeat(image, 32, axis=0)
    with running_server([*_slow_args(model_dir, "drain"), "--workers", "3"], tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)
        connections = [_raw_infer(server, "drain", batch) for _ in range(6)]
        owners = {
            _connection_owner(front_ends, c.getsockname()[1], server.rest_port) for c in connections
        }
        assert len(owners) >= 2  # the requests wait in several front ends
        for connection in connections:
            _finish(connection)
        in_server = 'ovms_current_requests{name="drain"'
        # SIGTERM once every request has reached a front end and several are still running.
        server.wait_for(lambda: _metric(server, in_server) >= 4, 60, "holding the requests")
        server.process.send_signal(signal.SIGTERM)
        replies = [_reply(connection) for connection in connections]
        assert server.process.wait(60) == 0
        assert all(reply.startswith(b"HTTP/1.1 200 OK") for reply in replies), [
            reply[:200] for reply in replies
        ]
        assert all(b'"model_version": "1"' in reply for reply in replies)
        assert not [pid for pid in front_ends if _alive(pid)]
        log = server.log()
        assert "finishing in-flight ones in every front end" in log
        assert log.count("]: stopped") == 3


def test_a_new_version_gets_a_new_engine_and_the_old_one_drains_before_it_is_released(
    tmp_path: Path, model_dir: Path, image: Image
) -> None:
    base = tmp_path / "swap"
    shutil.copytree(model_dir, base)
    batch = np.repeat(image, 32, axis=0)
    with running_server([*_slow_args(base, "swap"), "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        running = _raw_infer(server, "swap", batch)
        _finish(running)
        in_server = 'ovms_current_requests{name="swap"'
        server.wait_for(lambda: _metric(server, in_server) == 1, 30, "holding the request")
        shutil.copytree(base / "1", base / "2")

        def serving_version_2() -> bool:
            response = httpx.get(f"{server.rest}/v2/models/swap")
            return response.status_code == 200 and response.json()["versions"] == ["2"]

        server.wait_for(serving_version_2, 60, "serving version 2")
        reply = _reply(running)
        assert reply.startswith(b"HTTP/1.1 200 OK") and b'"model_version": "1"' in reply
        server.wait_for(lambda: "model swap version 1 released" in server.log(), 30, "released")
        body, headers = kserve_binary_request(batch)
        after = httpx.post(f"{server.rest}/v2/models/swap/infer", content=body, headers=headers)
        assert after.status_code == 200
        header_length = int(after.headers["Inference-Header-Content-Length"])
        assert json.loads(after.content[:header_length])["model_version"] == "2"
        diagnostics = httpx.get(f"{server.rest}/kubevino/diagnostics").json()
        assert [(m["version"], m["enginePid"]) for m in diagnostics["models"]] == [
            (2, server.process.pid)
        ]


def _slots_of(pid: int) -> int:
    """The shared-memory slots a front end holds open (memfd files it made)."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += str(fd.readlink()).startswith("/memfd:kubevino-slot-")
        except OSError:
            continue
    return held


def test_a_client_gone_while_its_request_is_in_the_engine_frees_its_slot(
    tmp_path: Path, model_dir: Path, image: Image, expected: npt.NDArray[Any]
) -> None:
    # About 0.4 s of work per request on one thread (under gRPC's 64 MiB message bound): long
    # enough that polling the metrics sees it running (at 32 images, ~0.2 s, a poll could miss it).
    batch = np.repeat(image, 64, axis=0)
    args = [
        *("--model_path", str(model_dir), "--model_name", "gone", "--nireq", "1"),
        *("--batch_size", "64", "--plugin_config", '{"INFERENCE_NUM_THREADS": 1}'),
        *("--metrics_enable", "--metrics_list", "ovms_infer_req_active,ovms_current_requests"),
    ]
    in_engine = 'ovms_infer_req_active{name="gone"'
    in_front_ends = 'ovms_current_requests{name="gone"'
    with running_server([*args, "--workers", "2"], tmp_path) as server:
        server.wait_ready()
        front_ends = _front_ends_of(server)

        def gone_while_in_engine(leave: Callable[[], None]) -> None:
            server.wait_for(lambda: _metric(server, in_engine) == 1, 60, "running it")
            leave()
            server.wait_for(lambda: _metric(server, in_engine) == 0, 60, "done with it")

        # gRPC: the client cancels its call (the front end's handler is cancelled).
        client = triton_grpc.InferenceServerClient(server.grpc)
        for _ in range(3):
            tensor = triton_grpc.InferInput("input", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            call = client.async_infer("gone", [tensor], callback=lambda *_, **__: None)
            gone_while_in_engine(call.cancel)
        # REST: the client's connection closes with the request unanswered.
        for _ in range(3):
            connection = _raw_infer(server, "gone", batch)
            _finish(connection)
            gone_while_in_engine(connection.close)

        # Every abandoned request's slot came back: one request at a time needs one slot per
        # front end, however many requests were abandoned.
        server.wait_for(lambda: _metric(server, in_front_ends) == 0, 60, "forgetting them")
        assert {pid: _slots_of(pid) <= 1 for pid in front_ends} == dict.fromkeys(front_ends, True)
        # The server is whole and answers the next requests.
        assert server.process.poll() is None and all(_alive(pid) for pid in front_ends)
        tensor = triton_grpc.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        answer = client.infer("gone", [tensor]).as_numpy("probabilities")
        np.testing.assert_allclose(answer, np.repeat(expected, 64, axis=0), rtol=1e-5, atol=1e-6)
        client.close()
        reply = _reply(_finishing(_raw_infer(server, "gone", batch)))
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert server.stop() == 0


def _finishing(connection: socket.socket) -> socket.socket:
    _finish(connection)
    return connection
