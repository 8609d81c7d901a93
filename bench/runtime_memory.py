"""The pod's memory per front-end count: kubevino-serve with ``--workers 1, 2, 4`` measured side
by side in one run, each after the same warm-up traffic over gRPC and REST.

For each count it prints the sum over the server's process tree (the engine process and its
front ends) of

* RSS: what ``ps`` shows per process, summed; pages shared between processes (the Python
  interpreter, libraries, OpenVINO's code) are counted once per process, so this overstates;
* PSS: each shared page divided among the processes sharing it; the sum is what the pod's
  processes hold, counting the libraries' code they map (which a node's other pods of the same
  image share);
* the pod's charge: the server runs in a memory cgroup of its own, as a container does, and
  the kernel's count for it is printed (v1 ``memory.usage_in_bytes``, v2 ``memory.current``:
  what a memory limit and the OOM killer compare), split into anonymous memory (heaps,
  copy-on-write pages) and page cache it faulted in first (files read, the memfd slots);
  needs root and a memory controller, else left out,

and the ratio of each to the one-front-end server. Issue 17's target: 4 front ends <= 1.3x one
process, for the ResNet-50-sized model, judged on the cgroup's count (the pod's charge; summed
RSS counts every shared page once per process). Before the engine split, N workers were N
complete servers, each with its own compiled model: ``N x`` the one-process figure is printed
beside it. A first server, not measured, reads the interpreter's and libraries' files (and
writes the bytecode caches), as a node's earlier pods of the image have: otherwise the first
measured server's cgroup is charged for them.

    python bench/runtime_memory.py [--counts 1,2,4] [--sizes resnet50] [--requests 50]
        [--starts fork,spawn]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc as triton_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.cgroups import memory_cgroup, memory_charged, memory_hierarchy
from tests.runtime.serving import kserve_binary_request, running_server

from kubevino_runtime.demo_model import INPUT_NAME, sample_input, write_model
from kubevino_runtime.workers import START_METHOD_ENV


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.extend(process_tree(int(child)))
    return pids


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


@contextlib.contextmanager
def pod_cgroup() -> Iterator[Path | None]:
    """A memory cgroup to start the server in, where this process may make one."""
    if os.geteuid() != 0 or memory_hierarchy() is None:
        yield None
        return
    with memory_cgroup() as cgroup:
        yield cgroup


def evict_from_page_cache(directory: Path) -> None:
    """Drop the model's files from the page cache (this process wrote them, so its cgroup was
    charged): the server reads them anew and its cgroup is charged, as a pod's is."""
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def prime(workdir: Path, count: int, start: str) -> None:
    served = [*("--model_path", str(workdir / "bench"), "--model_name", "bench")]
    with running_server(
        [*served, "--workers", str(count)], workdir, env={START_METHOD_ENV: start}
    ) as server:
        server.wait_ready(180)


def warm_up(rest: str, grpc: str, requests: int) -> None:
    """Traffic over both protocols and many connections, so every front end has made its
    slots and buffers, and the engine its infer requests' memory."""
    image = sample_input()
    body, headers = kserve_binary_request(image, INPUT_NAME)
    for _ in range(requests):
        response = httpx.post(f"{rest}/v2/models/bench/infer", content=body, headers=headers)
        response.raise_for_status()
        client = triton_grpc.InferenceServerClient(grpc)
        tensor = triton_grpc.InferInput(INPUT_NAME, list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        result = client.infer("bench", [tensor]).as_numpy("probabilities")
        assert result is not None and np.isfinite(result).all()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2,4", help="front-end counts (--workers)")
    parser.add_argument("--sizes", default="resnet50", help="bundled model sizes")
    parser.add_argument("--requests", type=int, default=50, help="warm-up requests per protocol")
    parser.add_argument(
        "--starts",
        default="fork,spawn",
        help="how front ends start (KUBEVINO_FRONT_END_START): forked from one launcher, or "
        "each a fresh interpreter",
    )
    args = parser.parse_args()
    counts = [int(count) for count in args.counts.split(",")]
    for size, start in itertools.product(args.sizes.split(","), args.starts.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(scratch)
            write_model(workdir / "bench", size=size)
            prime(workdir, max(counts), start)
            measured: dict[int, tuple[int, int, int, dict[str, int] | None]] = {}
            for count in counts:
                served = [
                    *("--model_path", str(workdir / "bench"), "--model_name", "bench"),
                    *("--workers", str(count)),
                ]
                evict_from_page_cache(workdir / "bench")
                with (
                    pod_cgroup() as cgroup,
                    running_server(
                        served, workdir, cgroup=cgroup, env={START_METHOD_ENV: start}
                    ) as server,
                ):
                    server.wait_ready(180)
                    warm_up(server.rest, server.grpc, args.requests)
                    pids = process_tree(server.process.pid)
                    totals = [memory_kib(pid) for pid in pids]
                    charged = memory_charged(cgroup) if cgroup is not None else None
                    measured[count] = (
                        len(pids),
                        sum(rss for rss, _ in totals),
                        sum(pss for _, pss in totals),
                        charged,
                    )
        _, one_rss, one_pss, one_charged = measured[counts[0]]
        print(f"\nmodel {size}, front ends started by {start}: after warm-up (MiB)")
        for count, (processes, rss, pss, charged) in measured.items():
            pod = "cgroup: not measured (needs root and a memory controller)"
            if charged is not None and one_charged is not None:
                mib = {key: value / 2**20 for key, value in charged.items()}
                pod = (
                    f"cgroup {mib['total']:7.1f} ({charged['total'] / one_charged['total']:.2f}x;"
                    f" anon {mib['anon']:6.1f}, page cache {mib['file']:6.1f})"
                )
            print(
                f"{count} front end{'s' if count > 1 else ' '} ({processes} processes): "
                f"RSS {rss / 1024:7.1f} ({rss / one_rss:.2f}x)  "
                f"PSS {pss / 1024:7.1f} ({pss / one_pss:.2f}x)  {pod}  "
                f"[{count} complete servers, as before the split: RSS "
                f"{count * one_rss / 1024:7.1f}]"
            )
        print("target: 4 front ends <= 1.3x one process (the cgroup's count)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
