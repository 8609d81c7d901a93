"""The bundled model: an image classifier built reproducibly with OpenVINO's graph API.

Shaped like ResNet's interface (``input`` 1x3x224x224 FP32 → ``probabilities`` 1x1000). Two
sizes: ``small`` (≈0.5 GMAC, ≈2.6 MB of weights), what the tests and the demo serve, and
``resnet50``, ResNet-50's own layers (v1.5: 7x7 stem, 16 bottleneck blocks with their
shortcuts, 2048→1000 head; batch norm left out, as inference folds it into the convolutions):
≈25.5 M parameters (≈97 MiB of FP32 weights) and ≈4.1 GMAC, for benchmarks that should weigh
serving against the inference and the memory a real classifier costs. Weights come from a fixed
seed, so every build gives byte-identical IR files. Nothing is downloaded.

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
# small: 3x3 convolutions, (channels in, channels out, stride).
SMALL_LAYERS = ((3, 32, 2), (32, 64, 2), (64, 128, 1), (128, 256, 2))
# resnet50: per stage, (bottleneck blocks, bottleneck width, stride of its first block).
RESNET50_STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))
RESNET50_EXPANSION = 4
SIZES = ("small", "resnet50")


def build_model(seed: int = 20261123, size: str = "small") -> ov.Model:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: one of {', '.join(SIZES)}")
    rng = np.random.default_rng(seed)
    image = ops.parameter(list(INPUT_SHAPE), np.float32, name=INPUT_NAME)
    image.set_layout(ov.Layout("NCHW"))
    if size == "small":
        node = image.output(0)
        for channels_in, channels_out, stride in SMALL_LAYERS:
            node = ops.relu(_convolution(rng, node, channels_in, channels_out, 3, stride))
            node = node.output(0)
        features = SMALL_LAYERS[-1][1]
    else:
        node, features = _resnet50_features(rng, image.output(0))
    pooled = ops.reduce_mean(node, ops.constant(np.array([2, 3], dtype=np.int64)), keep_dims=False)
    dense = (rng.standard_normal((features, CLASSES)) * 0.05).astype(np.float32)
    logits = ops.matmul(pooled, ops.constant(dense), False, False)
    probabilities = ops.softmax(logits, 1)
    probabilities.output(0).set_names({OUTPUT_NAME})
    return ov.Model([probabilities], [image], "kubevino-demo-classifier")


def _convolution(
    rng: np.random.Generator,
    node: ov.Output,
    channels_in: int,
    channels_out: int,
    kernel: int,
    stride: int,
    gain: float = 1.0,
) -> ov.Node:
    # He initialisation keeps the activations' scale through the ReLUs.
    scale = gain * np.sqrt(2.0 / (channels_in * kernel * kernel))
    weights = (rng.standard_normal((channels_out, channels_in, kernel, kernel)) * scale).astype(
        np.float32
    )
    pad = kernel // 2
    return ops.convolution(
        node, ops.constant(weights), [stride, stride], [pad, pad], [pad, pad], [1, 1]
    )


def _resnet50_features(rng: np.random.Generator, image: ov.Output) -> tuple[ov.Output, int]:
    node = ops.relu(_convolution(rng, image, 3, 64, 7, 2)).output(0)
    node = ops.max_pool(node, [2, 2], [1, 1], [1, 1], [1, 1], [3, 3]).output(0)
    channels = 64
    for blocks, width, first_stride in RESNET50_STAGES:
        out = width * RESNET50_EXPANSION
        for block in range(blocks):
            stride = first_stride if block == 0 else 1
            branch = ops.relu(_convolution(rng, node, channels, width, 1, 1)).output(0)
            branch = ops.relu(_convolution(rng, branch, width, width, 3, stride)).output(0)
            # Without batch norm the sum's variance would double with each block; a smaller
            # last layer keeps the 16 blocks' output (and so the softmax) from saturating.
            branch = _convolution(rng, branch, width, out, 1, 1, gain=0.25).output(0)
            shortcut = node
            if block == 0:
                shortcut = _convolution(rng, node, channels, out, 1, stride).output(0)
            node = ops.relu(ops.add(branch, shortcut)).output(0)
            channels = out
    return node, channels


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
    parser.add_argument("--size", choices=SIZES, default="small")
    args = parser.parse_args(argv)
    print(write_model(args.directory, args.version, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
