"""The demo without a cluster (scripts/demo.sh's fallback where no local cluster can run).

1. Render every bundled example InferenceModel into Kubernetes manifests (as the operator
   would apply them), with the example operator settings.
2. Build the bundled classifier, serve it with kubevino-serve, and ask it with real clients
   (tritonclient over KServe v2 gRPC and REST, a TF-Serving REST call, and Model Server's own
   ovmsclient over TF-Serving gRPC); compare with what in-process OpenVINO answers.
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import openvino as ov
import ovmsclient
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from kubevino_operator.cli import main as kubevino
from kubevino_runtime.demo_model import INPUT_NAME, OUTPUT_NAME, sample_input, write_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.runtime.serving import running_server

REPO = Path(__file__).resolve().parents[1]


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


def serve_and_ask(workdir: Path) -> None:
    base = workdir / "classifier"
    write_model(base)
    args = [
        "--model_path",
        str(base),
        "--model_name",
        "classifier",
        "--plugin_config",
        '{"PERFORMANCE_HINT": "LATENCY"}',
    ]
    print(f"== serving the bundled model: kubevino-serve {' '.join(args)}")
    with running_server(args, workdir) as server:
        server.wait_ready(timeout=120)
        image = sample_input()
        expected = ov.Core().compile_model(str(base / "1" / "model.xml"), "CPU")(image)[0]

        grpc_client = triton_grpc.InferenceServerClient(server.grpc)
        tensor = triton_grpc.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        over_grpc = grpc_client.infer("classifier", [tensor]).as_numpy(OUTPUT_NAME)

        http_client = triton_http.InferenceServerClient(server.rest.removeprefix("http://"))
        tensor = triton_http.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        over_rest = http_client.infer("classifier", [tensor]).as_numpy(OUTPUT_NAME)

        request = urllib.request.Request(
            f"{server.rest}/v1/models/classifier:predict",
            data=json.dumps({"instances": image.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            over_tfs = np.array(json.load(response)["predictions"], dtype=np.float32)

        # OpenVINO Model Server's own client, over TF-Serving's gRPC API.
        over_tfs_grpc = ovmsclient.make_grpc_client(server.grpc).predict(
            {INPUT_NAME: image}, "classifier"
        )

    top = np.argsort(expected[0])[::-1][:5]
    print(f"== top-5 classes: {top.tolist()} (p={expected[0][top].round(4).tolist()})")
    for name, got in (
        ("KServe gRPC", over_grpc),
        ("KServe REST", over_rest),
        ("TF-Serving REST", over_tfs),
        ("TF-Serving gRPC", over_tfs_grpc),
    ):
        same = np.allclose(got, expected, rtol=1e-6, atol=0)
        print(f"   {name:16} equals in-process OpenVINO: {same}")
        if not same:
            raise SystemExit(f"{name} answered differently")


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
