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

Dynamic batching (``--batching 1,8``): each ``--workers`` count is measured again with the
model's batch dimension made dynamic and ``--max_dynamic_batch`` set, against the same batch-1
in-process baseline.

    python bench/runtime_throughput.py [--seconds 10] [--device CPU] [--cores N]
        [--client-cpus K] [--workers 1,2,4] [--sizes small,resnet50] [--batching 1,8]
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


def in_process_run(model: Path, device: str, seconds: float) -> tuple[float, float]:
    """OpenVINO alone in this process, as the servers compile the model (THROUGHPUT hint, its
    optimal number of infer requests): inferences per second, and CPU ms per inference
    (compiling and warming up left out of both)."""
    compiled = ov.Core().compile_model(str(model), device, {"PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    image = sample_input()
    for _ in range(len(queue)):  # warm up
        queue.start_async({INPUT_NAME: image})
    queue.wait_all()
    cpu_started, started, done = time.process_time(), time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        queue.start_async({INPUT_NAME: image})
        done += 1
    queue.wait_all()  # every inference started has finished: done counts them
    cpu = time.process_time() - cpu_started
    return done / (time.perf_counter() - started), 1e3 * cpu / done


def in_process_throughput(model: Path, device: str, seconds: float) -> float:
    return in_process_run(model, device, seconds)[0]


def _grpc_request(image: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="bench")
    request.inputs.add(name=INPUT_NAME, datatype="FP32", shape=list(image.shape))
    request.raw_input_contents.append(image.tobytes())
    return request


async def _until(start_at: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.time()))


async def grpc_calls(
    target: str, start_at: float, seconds: float, concurrency: int, connections: int
) -> tuple[int, float, dict[str, int]]:
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
        cpu_before = time.process_time()  # every thread of this client process
        deadline = start_at + seconds
        done = 0

        async def worker(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
            nonlocal done
            while time.time() < deadline:
                await stub.ModelInfer(request)
                done += 1

        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(concurrency)))
        return done, time.process_time() - cpu_before, {}
    finally:
        for channel in channels:
            await channel.close()


async def rest_calls(
    base: str, start_at: float, seconds: float, concurrency: int, connections: int
) -> tuple[int, float, dict[str, int]]:
    """As grpc_calls, over REST with binary tensors (aiohttp opens a connection per call in
    flight, so ``connections`` is not needed)."""
    body, headers = kserve_binary_request(sample_input(), INPUT_NAME)
    url = f"{base}/v2/models/bench/infer"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
        await _until(start_at)
        cpu_before = time.process_time()  # every thread of this client process
        deadline = start_at + seconds
        done = 0

        failures: dict[str, int] = {}

        async def worker() -> None:
            nonlocal done
            while time.time() < deadline:
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200:
                        # Counted and reported, so a run shows a refusal instead of stopping.
                        failure = f"HTTP {response.status}: {answer[:160].decode(errors='replace')}"
                        failures[failure] = failures.get(failure, 0) + 1
                        continue
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.process_time() - cpu_before, failures


def client_process(
    protocol: str, address: str, start_at: float, seconds: float, n: int, connections: int
) -> tuple[int, float, dict[str, int]]:
    """Calls completed, the CPU seconds this client process spent making them, and the calls
    refused, by answer."""
    calls = grpc_calls if protocol == "grpc" else rest_calls
    return asyncio.run(calls(address, start_at, seconds, n, connections))


def _pin(cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


# How busy the clients were in the last served_throughput: near their CPUs' count, the clients
# and not the server may be what limits the figure.
CLIENT_LOAD: dict[str, float] = {}


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
        results = [f.result() for f in futures]
    finally:
        for pool in pools:
            pool.shutdown()
    CLIENT_LOAD["cpus"] = sum(cpu for _, cpu, _ in results) / seconds
    for _, _, failures in results:
        for failure, count in failures.items():
            print(f"  {protocol}: {count} calls refused: {failure}")
    CLIENT_LOAD["of"] = float(len({cpu for cpus in clients for cpu in cpus}) or os.cpu_count() or 1)
    return sum(done for done, _, _ in results) / seconds


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


def serving_args(
    workdir: Path, device: str, hint: str, workers: int = 1, max_batch: int = 1
) -> list[str]:
    """kubevino-serve flags for the bench model with the same device and hint as in-process.
    ``max_batch`` 1: the model as written (batch 1), no batching; 0: its batch dimension made
    dynamic, no batching; more: dynamic, and up to that many requests joined."""
    plugin_config = json.dumps({"PERFORMANCE_HINT": hint})
    dynamic = ["--batch_size", "-1"] if max_batch != 1 else []
    return [
        *dynamic,
        *("--max_dynamic_batch", str(max(1, max_batch))),
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
        "ovms_wait_for_infer_req_time_us,kubevino_batch_requests",
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
    parser.add_argument(
        "--batching",
        default="1",
        help="comma-separated --max_dynamic_batch values for the throughput phases (1: the "
        "model as written, off; 0: the model's batch made dynamic, off; more: dynamic, and "
        "requests joined)",
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput phases")
    args = parser.parse_args()
    args.batching = [int(value) for value in args.batching.split(",")]
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


def in_process_latencies(model: Path, device: str, count: int, pause: float = 0.0) -> list[float]:
    """One synchronous call after another, each ``pause`` seconds after the last: with a pause,
    what the server's infer request sees with one client, whose next request comes a round trip
    later (OpenVINO's threads go idle in between; back to back they stay warm)."""
    compiled = ov.Core().compile_model(str(model), device, {"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    image = sample_input()
    request.infer({INPUT_NAME: image})
    latencies = []
    for _ in range(count):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        request.infer({INPUT_NAME: image})
        latencies.append(time.perf_counter() - started)
    return latencies


def batch_mean(base: str) -> float:
    """Requests per inference so far (kubevino_batch_requests), 1 when never joined."""
    means = server_means_ms(base)
    return means.get("kubevino_batch_requests", 1e-3) * 1e3


def measure(size: str, args: argparse.Namespace, clients: list[list[int]]) -> None:
    throughput: dict[
        tuple[int, int], tuple[float, float, int, float, tuple[float, float, float]]
    ] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        model = write_model(workdir / "bench", size=size)
        baseline_before = in_process_throughput(model, args.device, args.seconds)
        for workers in [] if args.latency_only else args.workers:
            for max_batch in args.batching:
                served = serving_args(workdir, args.device, "THROUGHPUT", workers, max_batch)
                with running_server(served, workdir) as server:
                    server.wait_ready()
                    nireq = server_nireq(server.rest)  # summed over the workers
                    # Batches form only from requests that wait: keep a batch's worth waiting
                    # per infer request.
                    concurrency = max(2, nireq * (max_batch + 1) if max_batch > 1 else 2 * nireq)
                    # Several connections per client process when there are several workers:
                    # the kernel gives each connection to one worker.
                    connections = 1 if workers == 1 else 2 * workers
                    over_grpc = served_throughput(
                        "grpc", server.grpc, args.seconds, concurrency, clients, connections
                    )
                    grpc_clients = CLIENT_LOAD["cpus"]
                    over_rest = served_throughput(
                        "rest", server.rest, args.seconds, concurrency, clients
                    )
                    throughput[workers, max_batch] = (
                        over_grpc,
                        over_rest,
                        concurrency,
                        batch_mean(server.rest),
                        (grpc_clients, CLIENT_LOAD["cpus"], CLIENT_LOAD["of"]),
                    )
        baseline_after = in_process_throughput(model, args.device, args.seconds)

        local = in_process_latencies(model, args.device, args.latency_requests)
        with running_server(serving_args(workdir, args.device, "LATENCY"), workdir) as server:
            server.wait_ready()
            remote = grpc_latencies(server.grpc, args.latency_requests)
            inside = server_means_ms(server.rest)
        # The pause one client leaves the server's infer request between calls, about: its
        # round trip minus the inference.
        pause = max(0.0, percentile(remote, 50) - percentile(local, 50))
        paced = in_process_latencies(model, args.device, args.latency_requests, pause)

    baseline = statistics.mean([baseline_before, baseline_after])
    spread = abs(baseline_before - baseline_after) / baseline
    print(f"\nmodel {size}")
    print(
        f"in-process AsyncInferQueue        {baseline:8.1f} inf/s (before {baseline_before:.1f},"
        f" after {baseline_after:.1f}; drift {spread:.1%})"
    )
    for (workers, max_batch), measured in throughput.items():
        over_grpc, over_rest, concurrency, mean_batch, (grpc_load, rest_load, of) = measured
        label = f"{workers} front end{'s' if workers > 1 else ''}"
        if max_batch > 1:
            label += f", batch <= {max_batch}"
        elif max_batch == 0:
            label += ", dynamic, alone"
        detail = f"{concurrency} in flight, {mean_batch:.2f} requests per inference"
        print(
            f"server gRPC, {label:26s}        {over_grpc:8.1f} inf/s  ratio "
            f"{over_grpc / baseline:.3f}  (target >= 0.95; {detail}; clients busy "
            f"{grpc_load:.1f} of {of:.0f} CPUs)"
        )
        print(
            f"server REST binary, {label:26s} {over_rest:8.1f} inf/s  ratio "
            f"{over_rest / baseline:.3f}  (target >= 0.95; clients busy {rest_load:.1f} of "
            f"{of:.0f} CPUs)"
        )
    print("latency, one client, LATENCY hint, 1 front end (engine in-process):")
    for q in (50, 99):
        local_ms = percentile(local, q) * 1e3
        remote_ms = percentile(remote, q) * 1e3
        print(
            f"LATENCY p{q}: in-process {local_ms:.3f} ms, server gRPC {remote_ms:.3f} ms, "
            f"overhead {remote_ms - local_ms:+.3f} ms" + ("  (target <= 0.5 ms)" if q == 50 else "")
        )
    request_ms = inside.get("ovms_request_time_us", 0)
    # The server's histograms give means only: compare like with like.
    paced_ms = statistics.mean(paced) * 1e3
    print(
        f"  inside the server (means): request {request_ms:.3f} ms, of which inference "
        f"{inside.get('ovms_inference_time_us', 0):.3f} ms; in-process with {pause * 1e3:.2f} ms "
        f"between calls (as the server sees them) mean {paced_ms:.3f} ms, p50 "
        f"{percentile(paced, 50) * 1e3:.3f} ms: overhead inside the server "
        f"{request_ms - paced_ms:+.3f} ms (target <= 0.5 ms); the rest of the end-to-end "
        "overhead is gRPC transport and the client"
    )


if __name__ == "__main__":
    sys.exit(main())
