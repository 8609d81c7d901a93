"""kubevino-serve against KServe's Python model server wrapping the same compiled model.

Issue 17's target: at least 2x KServe's throughput on the 2-core machine with one shared client.
Both servers serve the bundled classifier from the same IR, compiled by the same OpenVINO on
the same device with the same plugin config (THROUGHPUT hint, OpenVINO's optimal number of infer
requests); the KServe side is bench/kserve_openvino_model.py, a ``kserve.Model`` run by KServe's
own ``ModelServer``. Both speak the KServe v2 protocol, so one client drives both:

* THROUGHPUT: one client process (the "shared client", the same process for every phase) keeps
  ``--concurrency`` requests in flight for ``--seconds``, over gRPC and over REST with binary
  tensors. Printed: each server's rate, the ratio kubevino-serve / KServe, the spread of the
  rounds, and CPU time per request of the server's processes and of the client. Measured for
  each ``--workers`` count: kubevino-serve's front-end processes, and the same number for
  KServe's ``--workers`` (its uvicorn REST processes, each unpickling a copy of the model and
  compiling its own; KServe's gRPC server stays in one process whatever the count).
* CEILING: OpenVINO alone in this process (AsyncInferQueue, no server, no client) on the same
  cores, once per round, for its CPU time per inference. A saturated machine's rate is about
  the cores used / CPU per request, so kubevino-serve's ratio times its CPU per request (server
  + client) over the inference's plus the client's is the ratio it would reach if its server
  added nothing to the inference: the most that cutting kubevino-serve's own costs can give.
  The in-process rate is printed too, but it moves with the machine's other load more than CPU
  times do.
* LATENCY: p50 with one sequential client (this process), over gRPC and REST, on the servers
  with the fewest workers measured (the THROUGHPUT hint: one stream per request).

For each worker count both servers run side by side and take turns phase by phase,
kubevino-serve then KServe, ``--rounds`` times (A, B, A, B): a drift of the machine shows as a
spread between rounds rather than as a ratio. The load average is printed with each round.
Servers and client share the CPUs this process may use (``--cores N``: the first N of them).
KServe's per-request logging (an access line and two timing lines per REST request, a line per
gRPC call, and the latency line of ``--enable_latency_logging``) is turned down to warnings,
since kubevino-serve logs nothing per request; ``--kserve-request-logs`` keeps KServe's defaults.

KServe runs from a virtualenv of its own, made on first use under
``~/.cache/kubevino/bench-kserve-<kserve version>`` from bench/kserve-requirements.txt (its pins,
openvino at the version this environment has), and remade when that file changes.

    python bench/kserve_python.py [--sizes small,resnet50] [--workers 1,2] [--seconds 3]
        [--rounds 3] [--concurrency 16] [--latency-requests 100] [--cores N]
        [--kserve-request-logs]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runtime_throughput import (
    client_process,
    grpc_latencies,
    in_process_run,
    percentile,
    server_nireq,
    serving_args,
)
from tests.runtime.serving import kserve_binary_request, running_server

from kubevino_devcluster.ports import free_ports
from kubevino_runtime.demo_model import INPUT_NAME, sample_input, write_model

BENCH = Path(__file__).resolve().parent
REQUIREMENTS = BENCH / "kserve-requirements.txt"
KSERVE_PROGRAM = BENCH / "kserve_openvino_model.py"
SERVERS = ("kubevino-serve", "KServe")
PROTOCOLS = ("grpc", "rest")
PROTOCOL_LABELS = {"grpc": "gRPC", "rest": "REST binary"}
# Warnings only from the loggers KServe writes a line per request to (the trace logger's timing
# middleware, the gRPC interceptor on "kserve", uvicorn's access log); uvicorn's start and stop
# lines stay.
QUIET_KSERVE_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        name: {"handlers": ["stderr"], "level": level, "propagate": False}
        for name, level in (
            ("kserve", "WARNING"),
            ("kserve.trace", "WARNING"),
            ("uvicorn", "INFO"),
            ("uvicorn.access", "WARNING"),
        )
    },
}


def pinned_version(package: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise SystemExit(f"{REQUIREMENTS} pins no {package}")


def kserve_python() -> Path:
    """The interpreter of the KServe virtualenv, made (or remade) when it does not match
    bench/kserve-requirements.txt."""
    ours = metadata.version("openvino")
    if pinned_version("openvino") != ours:
        raise SystemExit(
            f"{REQUIREMENTS.name} pins openvino {pinned_version('openvino')}, this environment "
            f"serves with {ours}: the two servers must run the same OpenVINO"
        )
    cache = Path(os.environ.get("KUBEVINO_CACHE", Path.home() / ".cache" / "kubevino"))
    venv = cache / f"bench-kserve-{pinned_version('kserve')}"
    python = venv / "bin" / "python"
    installed = venv / "kserve-requirements.txt"  # written last: a broken install is redone
    wanted = REQUIREMENTS.read_text()
    if python.exists() and installed.exists() and installed.read_text() == wanted:
        return python
    print(f"making the KServe virtualenv {venv} (once; about a minute)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    installed.write_text(wanted)
    return python


@dataclass(frozen=True)
class Endpoints:
    rest: str
    grpc: str
    nireq: int  # infer requests per compiled copy of the model
    pid: int  # the server's first process; its CPU time is summed with its descendants'


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU time of ``root`` and every process below it (all their threads)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree = {root}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(times.get(pid, 0.0) for pid in tree)


@contextmanager
def running_kubevino(workdir: Path, device: str, workers: int) -> Iterator[Endpoints]:
    with running_server(serving_args(workdir, device, "THROUGHPUT", workers), workdir) as server:
        server.wait_ready()
        yield Endpoints(server.rest, server.grpc, server_nireq(server.rest), server.process.pid)


@contextmanager
def running_kserve(
    python: Path, model_file: Path, workdir: Path, device: str, workers: int, request_logs: bool
) -> Iterator[Endpoints]:
    rest_port, grpc_port = free_ports(2)
    log_path = workdir / f"kserve-{rest_port}.log"
    logging_flags: list[str] = []
    if not request_logs:
        log_config = workdir / "kserve-logging.json"
        log_config.write_text(json.dumps(QUIET_KSERVE_LOGGING))
        logging_flags = ["--enable_latency_logging", "false", "--log_config_file", str(log_config)]
    command = [
        str(python),
        str(KSERVE_PROGRAM),
        "--model_file",
        str(model_file),
        "--model_name",
        "bench",
        "--target_device",
        device,
        "--plugin_config",
        json.dumps({"PERFORMANCE_HINT": "THROUGHPUT"}),
        "--http_port",
        str(rest_port),
        "--grpc_port",
        str(grpc_port),
        "--workers",
        str(workers),
        *logging_flags,
    ]
    with log_path.open("wb") as log:
        # A session of its own: KServe's REST worker processes can then be stopped with it.
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        rest = f"http://127.0.0.1:{rest_port}"
        deadline = time.monotonic() + 120
        while not _ready(rest):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"KServe did not become ready:\n{log_path.read_text()}")
            time.sleep(0.2)
        # Every REST worker answers readiness before it compiled its copy; the last one logs.
        while log_path.read_text().count("kserve-openvino: nireq") < 1 + (workers > 1) * workers:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"KServe's workers did not load:\n{log_path.read_text()}")
            time.sleep(0.2)
        nireq = int(log_path.read_text().split("kserve-openvino: nireq ")[1].split()[0])
        yield Endpoints(rest, f"127.0.0.1:{grpc_port}", nireq, process.pid)
    finally:
        _stop_session(process)


def _ready(rest: str) -> bool:
    try:
        return httpx.get(f"{rest}/v2/models/bench/ready").status_code == 200
    except httpx.TransportError:
        return False


def _stop_session(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to KServe's main process (it stops its REST workers); whatever of its session is
    left after the grace time is killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def rest_output(rest: str) -> npt.NDArray[np.float32]:
    body, headers = kserve_binary_request(sample_input(), INPUT_NAME)
    response = httpx.post(f"{rest}/v2/models/bench/infer", content=body, headers=headers)
    response.raise_for_status()
    header_length = int(response.headers["inference-header-content-length"])
    return np.frombuffer(response.content[header_length:], dtype=np.float32)


def rest_latencies(rest: str, count: int) -> list[float]:
    body, headers = kserve_binary_request(sample_input(), INPUT_NAME)
    url = f"{rest}/v2/models/bench/infer"
    latencies = []
    with httpx.Client() as client:
        client.post(url, content=body, headers=headers).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            client.post(url, content=body, headers=headers).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def _measured_client_process(
    protocol: str, address: str, start_at: float, seconds: float, n: int, connections: int
) -> tuple[int, float]:
    done, cpu, refused = client_process(protocol, address, start_at, seconds, n, connections)
    for answer, count in refused.items():
        print(f"  {protocol}: {count} calls refused: {answer}", flush=True)
    return done, cpu


@dataclass(frozen=True)
class Phase:
    rate: float  # requests per second
    server_cpu_ms: float  # per request, the server's processes and threads
    client_cpu_ms: float  # per request, the shared client's process while measured


class SharedClient:
    """One client process for every phase of the run, for both servers."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def throughput(
        self,
        protocol: str,
        address: str,
        seconds: float,
        concurrency: int,
        connections: int,
        server_pid: int,
    ) -> Phase:
        # Enough lead for the process to open its connections and make one call on each.
        start_at = time.time() + 1.5
        future = self._pool.submit(
            _measured_client_process,
            protocol,
            address,
            start_at,
            seconds,
            concurrency,
            connections,
        )
        time.sleep(max(0.0, start_at - time.time()))
        server_before = tree_cpu_seconds(server_pid)
        time.sleep(seconds)
        server_cpu = tree_cpu_seconds(server_pid) - server_before
        done, client_cpu = future.result()
        return Phase(done / seconds, 1e3 * server_cpu / done, 1e3 * client_cpu / done)

    def close(self) -> None:
        self._pool.shutdown()


@dataclass
class Figures:
    throughput: defaultdict[tuple[int, str, str], list[Phase]]  # workers, server, protocol
    latency_p50: defaultdict[tuple[str, str], list[float]]  # server, protocol; seconds
    in_process: list[tuple[float, float]]  # inferences per second, CPU ms per inference
    nireq: dict[str, int]
    load: list[float]


def measure(
    size: str, args: argparse.Namespace, python: Path, client: SharedClient
) -> tuple[Figures, float]:
    """Both servers run side by side (an idle server takes no CPU worth measuring) and take
    turns phase by phase, so a slow minute of the machine hits both sides of a ratio."""
    figures = Figures(defaultdict(list), defaultdict(list), [], {}, [])
    outputs: dict[str, npt.NDArray[np.float32]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        model_file = write_model(workdir / "bench", size=size)
        for workers in args.workers:
            # The kernel hands each connection to one front end: several, as the runtime
            # bench does, when there are several (the same for both servers).
            connections = 1 if workers == 1 else 2 * workers
            with ExitStack() as running:
                servers = {
                    "kubevino-serve": running.enter_context(
                        running_kubevino(workdir, args.device, workers)
                    ),
                    "KServe": running.enter_context(
                        running_kserve(
                            python,
                            model_file,
                            workdir,
                            args.device,
                            workers,
                            args.kserve_request_logs,
                        )
                    ),
                }
                for server, endpoints in servers.items():
                    figures.nireq[server] = endpoints.nireq
                    outputs.setdefault(server, rest_output(endpoints.rest))
                    # Unmeasured: the first inferences of each infer request are slower.
                    client.throughput(
                        "grpc", endpoints.grpc, 1.0, args.concurrency, 1, endpoints.pid
                    )
                for round_number in range(1, args.rounds + 1):
                    load = os.getloadavg()[0]
                    figures.load.append(load)
                    print(
                        f"  {size}, {workers} worker(s): round {round_number}, "
                        f"load average {load:.2f}",
                        flush=True,
                    )
                    figures.in_process.append(in_process_run(model_file, args.device, args.seconds))
                    for protocol in PROTOCOLS:
                        for server, endpoints in servers.items():
                            address = endpoints.grpc if protocol == "grpc" else endpoints.rest
                            figures.throughput[workers, server, protocol].append(
                                client.throughput(
                                    protocol,
                                    address,
                                    args.seconds,
                                    args.concurrency,
                                    connections,
                                    endpoints.pid,
                                )
                            )
                    if workers == min(args.workers):
                        count = args.latency_requests
                        for server, endpoints in servers.items():
                            for protocol, latencies in (
                                ("grpc", grpc_latencies(endpoints.grpc, count)),
                                ("rest", rest_latencies(endpoints.rest, count)),
                            ):
                                figures.latency_p50[server, protocol].append(
                                    percentile(latencies, 50)
                                )
    difference = float(np.abs(outputs["kubevino-serve"] - outputs["KServe"]).max())
    return figures, difference


def _rates(phases: list[Phase]) -> str:
    rates = [phase.rate for phase in phases]
    mean = statistics.mean(rates)
    rounds = ", ".join(f"{rate:.1f}" for rate in rates)
    server = statistics.mean(phase.server_cpu_ms for phase in phases)
    client = statistics.mean(phase.client_cpu_ms for phase in phases)
    return (
        f"{mean:6.1f}/s ({rounds}; spread {(max(rates) - min(rates)) / mean:.0%}; "
        f"CPU {server:.1f}+{client:.1f} ms)"
    )


def report(size: str, figures: Figures, difference: float, args: argparse.Namespace) -> None:
    print(
        f"\nmodel {size}: nireq kubevino-serve {figures.nireq['kubevino-serve']}, KServe "
        f"{figures.nireq['KServe']} per copy; load average at the rounds' starts "
        + ", ".join(f"{load:.2f}" for load in figures.load)
        + f"; largest output difference {difference:.2g}"
    )
    inference_cpu_ms = statistics.mean(cpu for _, cpu in figures.in_process)
    print(
        "in-process AsyncInferQueue, no server, no client: "
        f"{statistics.mean(rate for rate, _ in figures.in_process):.1f}/s (rounds "
        + ", ".join(f"{rate:.1f}" for rate, _ in figures.in_process)
        + f"), CPU {inference_cpu_ms:.1f} ms per inference"
    )
    print(
        f"throughput, {args.concurrency} in flight from one client process (CPU per request: "
        "server + client; target ratio >= 2.00; ceiling: the ratio kubevino-serve would reach "
        "on the cores it got if it added no CPU to the inference's):"
    )
    for workers in args.workers:
        for protocol in PROTOCOLS:
            ours = figures.throughput[workers, "kubevino-serve", protocol]
            theirs = figures.throughput[workers, "KServe", protocol]
            per_round = [a.rate / b.rate for a, b in zip(ours, theirs, strict=True)]
            ratio = statistics.mean(a.rate for a in ours) / statistics.mean(b.rate for b in theirs)
            our_client_ms = statistics.mean(phase.client_cpu_ms for phase in ours)
            our_cpu_ms = our_client_ms + statistics.mean(phase.server_cpu_ms for phase in ours)
            ceiling = ratio * our_cpu_ms / (inference_cpu_ms + our_client_ms)
            print(
                f"  {PROTOCOL_LABELS[protocol]:11s} {workers} worker{'s' if workers > 1 else ' '}"
                f"  kubevino-serve {_rates(ours)}  KServe {_rates(theirs)}  ratio "
                f"{ratio:.2f} (rounds "
                + ", ".join(f"{each:.2f}" for each in per_round)
                + f"; ceiling {ceiling:.2f})"
            )
    fewest = min(args.workers)
    print(
        f"latency p50, one sequential client, {fewest} worker{'s' if fewest > 1 else ''}, "
        "THROUGHPUT hint:"
    )
    for protocol in PROTOCOLS:
        cells = []
        for server in SERVERS:
            values = [value * 1e3 for value in figures.latency_p50[server, protocol]]
            rounds = ", ".join(f"{value:.2f}" for value in values)
            cells.append(f"{server} {statistics.mean(values):6.2f} ms ({rounds})")
        print(f"  {PROTOCOL_LABELS[protocol]:11s} " + "  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,resnet50", help="bundled model sizes, in order")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="comma-separated worker counts, each for both servers (KServe's default is 1)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput phase")
    parser.add_argument("--rounds", type=int, default=3, help="turns each server takes")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--device", default="CPU")
    parser.add_argument(
        "--cores", type=int, default=None, help="use only the first N CPUs (default: all)"
    )
    parser.add_argument(
        "--kserve-request-logs",
        action="store_true",
        help="leave KServe's per-request log lines on, as its defaults have them",
    )
    args = parser.parse_args()
    args.workers = [int(count) for count in args.workers.split(",")]
    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    # Servers and the shared client inherit this.
    os.sched_setaffinity(0, cpus)
    python = kserve_python()
    print(
        f"kserve {pinned_version('kserve')}, openvino {metadata.version('openvino')}; servers "
        f"and the shared client on CPUs {cpus}; load average "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg())
        + f"; KServe request logs {'on' if args.kserve_request_logs else 'off'}",
        flush=True,
    )
    client = SharedClient()
    try:
        for size in args.sizes.split(","):
            figures, difference = measure(size, args, python, client)
            report(size, figures, difference, args)
    finally:
        client.close()
    print("\nload average at the end " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
