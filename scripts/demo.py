"""The main job on the embedded default, without a cluster.

1. Render every bundled example InferenceModel into Kubernetes manifests (as the operator
   would apply them), with the example operator settings.
2. Build the bundled classifier, serve it with kubevino-serve, and ask it with real clients
   (tritonclient over KServe v2 gRPC and REST, and a TF-Serving REST call); compare with what
   in-process OpenVINO answers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import openvino as ov
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from kubevino_operator.cli import main as kubevino
from kubevino_runtime.demo_model import INPUT_NAME, OUTPUT_NAME, sample_input, write_model

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_examples(out_dir: Path) -> None:
    settings = REPO / "examples" / "settings.yaml"
    print(f"== rendering examples/ with {settings.relative_to(REPO)} into {out_dir}")
    for example in sorted((REPO / "examples").glob("*.yaml")):
        if example == settings:
            continue
        target = out_dir / example.name
        with target.open("w") as out:
            saved, sys.stdout = sys.stdout, out
            try:
                code = kubevino(["render", "-f", str(example), "--settings", str(settings)])
            finally:
                sys.stdout = saved
        summary = target.read_text().splitlines()[0].removeprefix("# ")
        print(f"   {example.name:28} exit {code}: {summary}")
        if code != 0:
            raise SystemExit(f"rendering {example.name} failed")


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kubevino-serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("kubevino-serve did not become ready")


def serve_and_ask(workdir: Path) -> None:
    base = workdir / "classifier"
    write_model(base)
    rest_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "kubevino_runtime",
        "--model_path",
        str(base),
        "--model_name",
        "classifier",
        "--port",
        str(grpc_port),
        "--rest_port",
        str(rest_port),
        "--rest_bind_address",
        "127.0.0.1",
        "--grpc_bind_address",
        "127.0.0.1",
        "--plugin_config",
        '{"PERFORMANCE_HINT": "LATENCY"}',
    ]
    print(f"== serving the bundled model: {' '.join(command[2:])}")
    env = {**os.environ, "KUBEVINO_TERMINATION_LOG": str(workdir / "termination-log")}
    process = subprocess.Popen(command, env=env)
    try:
        rest = f"http://127.0.0.1:{rest_port}"
        wait_ready(rest, process)
        image = sample_input()
        expected = ov.Core().compile_model(str(base / "1" / "model.xml"), "CPU")(image)[0]

        grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        tensor = triton_grpc.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        over_grpc = grpc_client.infer("classifier", [tensor]).as_numpy(OUTPUT_NAME)

        http_client = triton_http.InferenceServerClient(f"127.0.0.1:{rest_port}")
        tensor = triton_http.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        over_rest = http_client.infer("classifier", [tensor]).as_numpy(OUTPUT_NAME)

        request = urllib.request.Request(
            f"{rest}/v1/models/classifier:predict",
            data=json.dumps({"instances": image.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            over_tfs = np.array(json.load(response)["predictions"], dtype=np.float32)

        top = np.argsort(expected[0])[::-1][:5]
        print(f"== top-5 classes: {top.tolist()} (p={expected[0][top].round(4).tolist()})")
        for name, got in (
            ("KServe gRPC", over_grpc),
            ("KServe REST", over_rest),
            ("TF-Serving REST", over_tfs),
        ):
            same = np.allclose(got, expected, rtol=1e-6, atol=0)
            print(f"   {name:16} equals in-process OpenVINO: {same}")
            if not same:
                raise SystemExit(f"{name} answered differently")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kubevino-demo-") as scratch:
        workdir = Path(scratch)
        (workdir / "manifests").mkdir()
        render_examples(workdir / "manifests")
        serve_and_ask(workdir)
    print("== done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
