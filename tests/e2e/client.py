"""Real clients against a served model, run as a subprocess so that every socket (gRPC's
own threads included) is made inside the node's network namespace.

    python -m tests.e2e.client REST_ADDRESS GRPC_ADDRESS MODEL  →  JSON on stdout
"""

from __future__ import annotations

import json
import sys

import httpx
import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from kubevino_runtime.demo_model import sample_input


def main() -> None:
    rest, grpc_address, model = sys.argv[1:4]
    image = sample_input()
    http_client = triton_http.InferenceServerClient(rest)
    tensor = triton_http.InferInput("input", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    kserve_rest = http_client.infer(model, [tensor]).as_numpy("probabilities")
    grpc_client = triton_grpc.InferenceServerClient(grpc_address)
    grpc_tensor = triton_grpc.InferInput("input", list(image.shape), "FP32")
    grpc_tensor.set_data_from_numpy(image)
    kserve_grpc = grpc_client.infer(model, [grpc_tensor]).as_numpy("probabilities")
    metadata = grpc_client.get_model_metadata(model, as_json=True)
    tfs = httpx.post(
        f"http://{rest}/v1/models/{model}:predict", json={"instances": image.tolist()}, timeout=30
    )
    tfs.raise_for_status()
    print(
        json.dumps(
            {
                "kserve_rest": np.asarray(kserve_rest).tolist(),
                "kserve_grpc": np.asarray(kserve_grpc).tolist(),
                "tf_serving": tfs.json()["predictions"],
                "metadata": metadata,
            }
        )
    )


if __name__ == "__main__":
    main()
