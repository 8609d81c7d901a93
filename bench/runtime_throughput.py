"""kubevino-serve against in-process OpenVINO, measured side by side in one run.

Same model (the bundled classifier), same device (CPU), same hint. Prints ratios:

* THROUGHPUT at saturation: server over gRPC and over REST (binary tensors) / in-process
  AsyncInferQueue. Targets: >= 0.95 (gRPC), >= 0.95 (REST binary), on 16 cores.
* LATENCY with one client: p50 and p99 of the server over gRPC minus in-process sync inference.
  Target: p50 overhead <= 0.5 ms.

The in-process baseline runs before and after the server phases; its mean is the reference, so a
drift of the machine during the run shows up as the spread printed next to it.

Clients are several processes (one Python process tops out near a thousand gRPC calls a second,
which would measure the client). On machines with enough cores the clients get CPUs of their
own (``--client-cpus``), as remote clients would, and the server and the in-process baseline
share the rest: both sides of a ratio get the same cores.

Throughput is measured for each ``--workers`` count (front-end processes sharing the ports,
one engine process holding the compiled model; by default 1, and also a quarter of the
server's CPUs on 8 or more CPUs); latency with one. ``--cores N`` runs everything on the first N
CPUs this process may use (the rest stay idle), so one machine can stand in for a smaller one.
Nothing is downloaded: the models are written by code.

    python bench/runtime_throughput.py [--seconds 10] [--device CPU] [--cores N]
        [--client-cpus K] [--workers 1,2,4] [--sizes small,resnet50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx
import numpy as np
import openvino as ov
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.runtime.serving import kserve_binary_request, running_server

from kubevino_runtime.demo_model import INPUT_NAME, sample_input, write_model


def in_process_throughput(model: Path, device: str, seconds: float) -> float:
    core = ov.Core()
    compiled = core.compile_model(str(model), device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    image = sample_input()
    done = 0

    def count(_: Any, __: Any) -> None:
        nonlocal done
        done += 1

    queue.set_callback(count)
    for _ in range(len(queue)):  # warm up
        queue.start_async({INPUT_NAME: image})
    queue.wait_all()
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        queue.start_async({INPUT_NAME: image})
    queue.wait_all()
    return done / (time.perf_counter() - started)


def in_process_latencies(model: Path, device: str, count: int) -> list[float]:
    compiled = ov.Core().compile_model(str(model), device, {"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    image = sample_input()
    request.infer({INPUT_NAME: image})
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        request.infer({INPUT_NAME: image})
        latencies.append(time.perf_counter() - started)
    return latencies


def _grpc_request(image: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="bench")
    request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(image.shape))
    request.raw_input_contents.append(image.tobytes())
    return request


async def _until(start_at: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.time()))


async def grpc_calls(
    target: str, start_at: float, seconds: float, concurrency: int, connections: int
) -> int:
    """gRPC ModelInfer calls completed in [start_at, start_at + seconds) by one client process,
    over ``connections`` channels (a channel is one connection, and the kernel hands each
    connection to one server worker)."""
    request = _grpc_request(sample_input())
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, min(connections, concurrency)))
    ]
    stubs = [pb_grpc.GRPCInferenceServiceStub(channel) for channel in channels]
    try:
        for stub in stubs:
            await stub.ModelInfer(request)
        await _until(start_at)
        deadline = start_at + seconds
        done = 0

        async def worker(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
            nonlocal done
            while time.time() < deadline:
                await stub.ModelInfer(request)
                done += 1

        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(concurrency)))
        return done
    finally:
        for channel in channels:
            await channel.close()


async def rest_calls(
    base: str, start_at: float, seconds: float, concurrency: int, connections: int
) -> int:
    """As grpc_calls, over REST with binary tensors (aiohttp opens a connection per call in
    flight, so ``connections`` is not needed)."""
    body, headers = kserve_binary_request(sample_input(), INPUT_NAME)
    url = f"{base}/v2/models/bench/infer"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
        await _until(start_at)
        deadline = start_at + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.time() < deadline:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done


def client_process(
    protocol: str, address: str, start_at: float, seconds: float, n: int, connections: int
) -> int:
    calls = grpc_calls if protocol == "grpc" else rest_calls
    return asyncio.run(calls(address, start_at, seconds, n, connections))


def _pin(cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def served_throughput(
    protocol: str,
    address: str,
    seconds: float,
    concurrency: int,
    clients: list[list[int]],
    connections: int = 1,
) -> float:
    """Inferences per second over ``concurrency`` requests in flight, spread over one client
    process per entry of ``clients`` (each pinned to the CPUs listed, when any)."""
    share = [
        concurrency // len(clients) + (i < concurrency % len(clients)) for i in range(len(clients))
    ]
    start_at = time.time() + 6.0  # every client started, connected and warm before the clock
    spawn = multiprocessing.get_context("spawn")
    pools = [
        ProcessPoolExecutor(1, mp_context=spawn, initializer=_pin, initargs=(cpus,))
        for cpus in clients
    ]
    try:
        futures = [
            pool.submit(client_process, protocol, address, start_at, seconds, n, connections)
            for pool, n in zip(pools, share, strict=True)
            if n
        ]
        return sum(f.result() for f in futures) / seconds
    finally:
        for pool in pools:
            pool.shutdown()


def grpc_latencies(target: str, count: int) -> list[float]:
    request = _grpc_request(sample_input())
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(request)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            stub.ModelInfer(request)
            latencies.append(time.perf_counter() - started)
    return latencies


def server_nireq(base: str) -> int:
    """The infer-request pool the server chose (ovms_infer_req_queue_size)."""
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("ovms_infer_req_queue_size{"):
            return int(float(line.rsplit(" ", 1)[1]))
    raise RuntimeError("the server reports no infer request pool")


def serving_args(workdir: Path, device: str, hint: str, workers: int = 1) -> list[str]:
    """kubevino-serve flags for the bench model with the same device and hint as in-process."""
    plugin_config = json.dumps({"PERFORMANCE_HINT": hint})
    return [
        "--workers",
        str(workers),
        "--model_path",
        str(workdir / "bench"),
        "--model_name",
        "bench",
        "--target_device",
        device,
        "--plugin_config",
        plugin_config,
        # The pool size and the server's own latency histograms are read from /metrics.
        "--metrics_enable",
        "--metrics_list",
        "ovms_infer_req_queue_size,ovms_request_time_us,ovms_inference_time_us,"
        "ovms_wait_for_infer_req_time_us",
    ]


def _span(cpus: list[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput phase")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--device", default="CPU")
    parser.add_argument(
        "--client-cpus",
        type=int,
        default=None,
        help="CPUs kept for the clients, the rest for server and baseline "
        "(default: a quarter on 8 or more CPUs, none below)",
    )
    parser.add_argument("--client-processes", type=int, default=None)
    parser.add_argument(
        "--cores", type=int, default=None, help="use only the first N CPUs (default: all)"
    )
    parser.add_argument(
        "--sizes", default="small,resnet50", help="bundled model sizes to measure, in order"
    )
    parser.add_argument(
        "--workers",
        default=None,
        help="comma-separated kubevino-serve --workers counts for the throughput phases "
        "(default: 1, and also a quarter of the server's CPUs on 8 or more CPUs)",
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    reserved = (
        args.client_cpus
        if args.client_cpus is not None
        else (len(cpus) // 4 if len(cpus) >= 8 else 0)
    )
    server_cpus, client_cpus = cpus[: len(cpus) - reserved], cpus[len(cpus) - reserved :]
    args.workers = (
        [int(count) for count in args.workers.split(",")]
        if args.workers
        else sorted({1, max(1, len(server_cpus) // 4)})
    )
    processes = args.client_processes or max(1, reserved or len(cpus) // 4)
    clients = [client_cpus[i::processes] if client_cpus else [] for i in range(processes)]
    # The server and the in-process baseline inherit this: the same cores on both sides.
    os.sched_setaffinity(0, server_cpus)

    print(
        f"device {args.device}; client processes {processes}; server and baseline on CPUs "
        f"{_span(server_cpus)}, clients on {_span(client_cpus) if client_cpus else 'the same CPUs'}"
    )
    for size in args.sizes.split(","):
        measure(size, args, clients)
    return 0


def server_means_ms(base: str) -> dict[str, float]:
    """Mean of each of the server's own latency histograms, in ms."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        metric = name.split("{")[0]
        for suffix, into in (("_sum", sums), ("_count", counts)):
            if metric.endswith(suffix):
                key = metric.removesuffix(suffix)
                into[key] = into.get(key, 0.0) + float(value)
    return {key: sums[key] / counts[key] / 1e3 for key in sums if counts.get(key)}


def measure(size: str, args: argparse.Namespace, clients: list[list[int]]) -> None:
    throughput: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        model = write_model(workdir / "bench", size=size)
        baseline_before = in_process_throughput(model, args.device, args.seconds)
        for workers in args.workers:
            served = serving_args(workdir, args.device, "THROUGHPUT", workers)
            with running_server(served, workdir) as server:
                server.wait_ready()
                nireq = server_nireq(server.rest)  # summed over the workers
                concurrency = max(2, 2 * nireq)
                # Several connections per client process when there are several workers: the
                # kernel gives each connection to one worker.
                connections = 1 if workers == 1 else 2 * workers
                throughput[workers] = (
                    served_throughput(
                        "grpc", server.grpc, args.seconds, concurrency, clients, connections
                    ),
                    served_throughput("rest", server.rest, args.seconds, concurrency, clients),
                )
        baseline_after = in_process_throughput(model, args.device, args.seconds)

        local = in_process_latencies(model, args.device, args.latency_requests)
        with running_server(serving_args(workdir, args.device, "LATENCY"), workdir) as server:
            server.wait_ready()
            remote = grpc_latencies(server.grpc, args.latency_requests)
            inside = server_means_ms(server.rest)

    baseline = statistics.mean([baseline_before, baseline_after])
    spread = abs(baseline_before - baseline_after) / baseline
    print(f"\nmodel {size}")
    print(
        f"in-process AsyncInferQueue        {baseline:8.1f} inf/s (before {baseline_before:.1f},"
        f" after {baseline_after:.1f}; drift {spread:.1%})"
    )
    for workers, (over_grpc, over_rest) in throughput.items():
        label = f"{workers} front end{'s' if workers > 1 else ''}"
        print(
            f"server gRPC, {label:12s}          {over_grpc:8.1f} inf/s  ratio "
            f"{over_grpc / baseline:.3f}  (target >= 0.95)"
        )
        print(
            f"server REST binary, {label:12s}   {over_rest:8.1f} inf/s  ratio "
            f"{over_rest / baseline:.3f}  (target >= 0.95)"
        )
    print("latency, one client, LATENCY hint, 1 front end (engine in-process):")
    for q in (50, 99):
        local_ms = percentile(local, q) * 1e3
        remote_ms = percentile(remote, q) * 1e3
        print(
            f"LATENCY p{q}: in-process {local_ms:.3f} ms, server gRPC {remote_ms:.3f} ms, "
            f"overhead {remote_ms - local_ms:+.3f} ms" + ("  (target <= 0.5 ms)" if q == 50 else "")
        )
    print(
        f"  inside the server (means): request {inside.get('ovms_request_time_us', 0):.3f} ms, "
        f"of which inference {inside.get('ovms_inference_time_us', 0):.3f} ms; the rest of the "
        "overhead is gRPC transport and the client"
    )


if __name__ == "__main__":
    sys.exit(main())
