"""The second pod starts faster with OpenVINO's compiled-model cache on the shared PVC.

Starts the real ``kubevino-serve`` (as the operator renders it: ``--cache_dir``) on one model,
one start after another, measured side by side in one run:

* ``no cache``: no ``--cache_dir`` (each pod compiles);
* ``first``: an empty cache directory (what the first replica finds: it compiles and writes);
* ``second``: the same directory again (what the second replica or a restarted pod finds).

For each, the time from process start to ``/v2/health/ready`` and the time OpenVINO's compile
as the median of ``--rounds`` rounds; then the ratio ``no cache / second``. The model is the
bundled classifier deepened by ``--depth`` extra 3x3 convolution blocks (compile time grows with
the graph, reading a cached blob barely does; ``--depth 0`` is the bundled model as is), or
``--model-dir``.

    python bench/model_cache.py [--rounds 5] [--depth 48] [--target CPU] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import openvino as ov
import openvino.opset13 as ops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.serving import running_server

from kubevino_runtime.demo_model import INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME, write_model


def deep_model(directory: Path, depth: int) -> None:
    """A classifier-shaped model with ``depth`` extra conv+relu blocks (128 channels, 56x56)."""
    rng = np.random.default_rng(1)
    image = ops.parameter(list(INPUT_SHAPE), np.float32, name=INPUT_NAME)
    node = ops.relu(
        ops.convolution(
            image,
            ops.constant(rng.standard_normal((128, 3, 3, 3)).astype(np.float32) * 0.1),
            [4, 4],
            [1, 1],
            [1, 1],
            [1, 1],
        )
    ).output(0)
    for _ in range(depth):
        weights = (rng.standard_normal((128, 128, 3, 3)) * 0.03).astype(np.float32)
        node = ops.relu(
            ops.convolution(node, ops.constant(weights), [1, 1], [1, 1], [1, 1], [1, 1])
        ).output(0)
    pooled = ops.reduce_mean(node, ops.constant(np.array([2, 3], dtype=np.int64)), False)
    logits = ops.matmul(
        pooled, ops.constant(rng.standard_normal((128, 10)).astype(np.float32)), False, False
    )
    out = ops.softmax(logits, 1)
    out.output(0).set_names({OUTPUT_NAME})
    target = directory / "1" / "model.xml"
    target.parent.mkdir(parents=True)
    ov.save_model(ov.Model([out], [image], "deep"), str(target), compress_to_fp16=False)


def start_to_ready(model_dir: Path, target: str, cache: Path | None, work: Path) -> float:
    args = ["--model_path", str(model_dir), "--model_name", "m", "--target_device", target]
    if cache is not None:
        args += ["--cache_dir", str(cache)]
    started = time.perf_counter()
    with running_server(args, work, wait_live=False) as server:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.rest}/v2/health/ready", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if server.process.poll() is not None:
                raise SystemExit(f"server exited:\n{server.log()}")
            time.sleep(0.02)
    raise SystemExit("not ready within 300 s")


def compile_seconds(model_xml: Path, target: str, cache: Path | None) -> float:
    """OpenVINO's compile alone, in this process (a fresh Core: no in-memory reuse)."""
    core = ov.Core()
    config = {"CACHE_DIR": str(cache)} if cache is not None else {}
    started = time.perf_counter()
    core.compile_model(str(model_xml), target, config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", default="CPU")
    parser.add_argument("--depth", type=int, default=48)
    parser.add_argument("--model-dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubevino-bench-") as scratch:
        root = Path(scratch)
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = root / "model"
            if args.depth:
                deep_model(model_dir, args.depth)
            else:
                write_model(model_dir)
        results: dict[str, list[float]] = {"no cache": [], "first": [], "second": []}
        compiles: dict[str, list[float]] = {"no cache": [], "first": [], "second": []}
        model_xml = next(model_dir.glob("*/model.xml"))
        blobs = 0
        for round_index in range(args.rounds):
            cache = root / f"cache-{round_index}"
            cache.mkdir()
            # Interleaved in each round, so drift on a noisy machine hits all three alike.
            results["no cache"].append(start_to_ready(model_dir, args.target, None, root))
            results["first"].append(start_to_ready(model_dir, args.target, cache, root))
            results["second"].append(start_to_ready(model_dir, args.target, cache, root))
            blobs = sum(1 for _ in cache.iterdir())
            shutil.rmtree(cache)
            cache.mkdir()
            compiles["no cache"].append(compile_seconds(model_xml, args.target, None))
            compiles["first"].append(compile_seconds(model_xml, args.target, cache))
            compiles["second"].append(compile_seconds(model_xml, args.target, cache))
            shutil.rmtree(cache)
        print(f"model {model_dir}, target {args.target}, {args.rounds} rounds, "
              f"{blobs} cache blob(s) written by the first start")  # fmt: skip
        for name, seconds in results.items():
            print(f"  {name:>9}: start to ready median {statistics.median(seconds):.3f} s "
                  f"(min {min(seconds):.3f}, max {max(seconds):.3f})")  # fmt: skip
        for name, seconds in compiles.items():
            print(f"  {name:>9}: compile_model alone median {statistics.median(seconds):.3f} s")
        ratio = statistics.median(results["no cache"]) / statistics.median(results["second"])
        print(f"ratio no cache / second start with the cache: {ratio:.2f}x (start to ready)")
        ratio = statistics.median(compiles["no cache"]) / statistics.median(compiles["second"])
        print(f"ratio no cache / second start with the cache: {ratio:.2f}x (compile alone)")


if __name__ == "__main__":
    main()
