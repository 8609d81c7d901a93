"""kubevino-serve under a CPU quota below the machine's cores: with and without the thread cap.

Both servers run in the same throwaway cgroup quota (as a pod with a CPU limit would) and serve
the same model with the THROUGHPUT hint. "capped" is the default (OpenVINO's CPU threads sized
for the quota); "uncapped" sets ``INFERENCE_NUM_THREADS`` 0 in the model's plugin config, which
is OpenVINO's own choice from the cores it sees. Printed side by side:

* saturation throughput (closed loop, REST with binary tensors);
* p50 and p99 latency at one fixed request rate (open loop: requests are sent on a schedule,
  whether or not earlier ones finished), the rate being a fraction of the capped server's
  saturation throughput, so both servers get the same load.

Needs root (it makes the cgroup). Never pass/fail.

    python bench/cpu_quota.py [--quota CPUS] [--load 0.6] [--seconds 8] [--size small|resnet50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.cgroups import cpu_quota
from tests.runtime.serving import kserve_binary_request, running_server

from kubevino_runtime.demo_model import INPUT_NAME, sample_input, write_model


def _infer_request() -> tuple[bytes, dict[str, str]]:
    return kserve_binary_request(sample_input(), INPUT_NAME)


async def saturation(url: str, seconds: float, concurrency: int) -> float:
    """Inferences per second with ``concurrency`` requests always in flight."""
    body, headers = _infer_request()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def latencies_at_rate(url: str, rate: float, seconds: float) -> list[float]:
    """Latency of each request sent on a fixed schedule of ``rate`` per second."""
    body, headers = _infer_request()
    results: list[float] = []

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        results.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = time.perf_counter()
        tasks = []
        for index in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(session)))
        await asyncio.gather(*tasks)
    return results


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    model: Path,
    cgroup: Path,
    plugin_config: dict[str, str],
    args: argparse.Namespace,
    work: Path,
    rate: float | None,
) -> dict[str, Any]:
    server_args = [
        "--model_path", str(model), "--model_name", "bench", "--target_device", "CPU",
        "--plugin_config", json.dumps({"PERFORMANCE_HINT": "THROUGHPUT", **plugin_config}),
    ]  # fmt: skip
    with running_server(server_args, work, cgroup=cgroup) as server:
        server.wait_ready()
        (version,) = httpx.get(f"{server.rest}/kubevino/diagnostics").json()["models"]
        url = f"{server.rest}/v2/models/bench/infer"
        concurrency = max(2, 2 * int(version["optimalInferRequests"]))
        asyncio.run(saturation(url, 1.0, concurrency))  # warm up
        throughput = asyncio.run(saturation(url, args.seconds, concurrency))
        chosen = rate if rate is not None else args.load * throughput
        latencies = asyncio.run(latencies_at_rate(url, chosen, args.seconds))
    return {
        "streams": version["streams"],
        "inferRequests": version["inferRequests"],
        "throughput": throughput,
        "rate": chosen,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cpus = len(os.sched_getaffinity(0))
    parser.add_argument("--quota", type=float, default=max(1.0, cpus / 4), help="CPUs of quota")
    parser.add_argument("--load", type=float, default=0.6, help="rate / capped saturation")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", choices=("small", "resnet50"), default="small")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        model = work / "model"
        write_model(model, size=args.size)
        with cpu_quota(args.quota) as cgroup:
            capped = measure(model, cgroup, {}, args, work, None)
            uncapped = measure(
                model, cgroup, {"INFERENCE_NUM_THREADS": "0"}, args, work, capped["rate"]
            )
    print(f"{cpus} CPUs in the cpuset, a quota of {args.quota:g} CPUs, model {args.size}")
    print(f"{'':>28} {'capped':>10} {'uncapped':>10} {'uncapped/capped':>16}")
    for key, label in (
        ("streams", "streams"),
        ("inferRequests", "infer requests"),
        ("throughput", "saturation, inferences/s"),
        ("p50_ms", f"p50 ms at {capped['rate']:.0f}/s"),
        ("p99_ms", f"p99 ms at {capped['rate']:.0f}/s"),
    ):
        ratio = uncapped[key] / capped[key] if capped[key] else float("nan")
        print(f"{label:>28} {capped[key]:>10.1f} {uncapped[key]:>10.1f} {ratio:>16.2f}")
    if args.json:
        args.json.write_text(json.dumps({"capped": capped, "uncapped": uncapped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
