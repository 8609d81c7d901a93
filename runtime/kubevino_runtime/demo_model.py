"""The bundled model: a small image classifier built reproducibly with OpenVINO's graph API.

Shaped like ResNet's interface (``input`` 1x3x224x224 FP32 → ``probabilities`` 1x1000). Two
sizes: ``small`` (≈0.5 GMAC, ≈1.7 MB of weights), what the tests and the demo serve, and
``resnet50`` (≈3.5 GMAC, near ResNet-50's 4.1), for benchmarks that should weigh serving
against the inference a real classifier costs. Weights come from a fixed seed, so every build
gives byte-identical IR files. Nothing is downloaded.

``kubevino-demo-model DIR [--size resnet50]`` writes ``DIR/1/model.xml`` and ``model.bin``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (1, 3, 224, 224)
CLASSES = 1000
# 3x3 convolutions: (channels in, channels out, stride).
SIZES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "small": ((3, 32, 2), (32, 64, 2), (64, 128, 1), (128, 256, 2)),
    "resnet50": (
        (3, 64, 2),
        (64, 64, 1),
        (64, 64, 1),
        (64, 128, 2),
        (128, 128, 1),
        (128, 128, 1),
        (128, 256, 2),
        (256, 256, 1),
        (256, 512, 2),
        (512, 512, 1),
    ),
}


def build_model(seed: int = 20261123, size: str = "small") -> ov.Model:
    layers = SIZES[size]
    rng = np.random.default_rng(seed)
    image = ops.parameter(list(INPUT_SHAPE), np.float32, name=INPUT_NAME)
    image.set_layout(ov.Layout("NCHW"))
    node = image.output(0)
    for channels_in, channels_out, stride in layers:
        scale = np.sqrt(2.0 / (channels_in * 9))
        weights = (rng.standard_normal((channels_out, channels_in, 3, 3)) * scale).astype(
            np.float32
        )
        conv = ops.convolution(
            node, ops.constant(weights), [stride, stride], [1, 1], [1, 1], [1, 1]
        )
        node = ops.relu(conv).output(0)
    pooled = ops.reduce_mean(node, ops.constant(np.array([2, 3], dtype=np.int64)), keep_dims=False)
    dense = (rng.standard_normal((layers[-1][1], CLASSES)) * 0.05).astype(np.float32)
    logits = ops.matmul(pooled, ops.constant(dense), False, False)
    probabilities = ops.softmax(logits, 1)
    probabilities.output(0).set_names({OUTPUT_NAME})
    return ov.Model([probabilities], [image], "kubevino-demo-classifier")


def write_model(directory: Path, version: int = 1, size: str = "small") -> Path:
    """Write the model as ``directory/<version>/model.xml`` (+ .bin); return the .xml path."""
    target = directory / str(version) / "model.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(build_model(size=size), str(target), compress_to_fp16=False)
    return target


def sample_input(seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).random(INPUT_SHAPE, dtype=np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubevino-demo-model", description=__doc__)
    parser.add_argument("directory", type=Path, help="model base path to create")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args(argv)
    print(write_model(args.directory, args.version, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
