"""``kubevino dev-cluster up|status|down``: the local cluster as a tool.

``up`` starts a detached supervisor (``kubevino_devcluster.supervisor``) that holds the cluster,
relays its progress until the cluster is Ready, proves the host-side kubeconfig with kubectl and
returns to the shell; ``status`` says what runs; ``down`` stops the supervisor, checks that no
process, network namespace or mount of the cluster is left, and removes its directory.

``kubevino_operator.cli`` hands it every argument after ``dev-cluster``; it is part of a
checkout, not of the images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kubevino_devcluster.nodeoptions import NodeOption, NodeOptionError, requested_nodes
from kubevino_devcluster.state import (
    DEFAULT_DIRECTORY,
    READY,
    SUPERVISOR_LOG,
    ClusterState,
    read_state,
    supervisor_alive,
)

EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
UNIX_SOCKET_ROOM = 104
IMAGE_TARGETS = ("operator", "runtime", "runtime-gpu")
CLUSTER_PROGRAMS = frozenset(
    {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "containerd",
        "containerd-shim-runc-v2",
    }
)
NEEDS_ROOT = (
    "kubevino dev-cluster needs root: it starts etcd, a kubelet, containerd and runc, makes a "
    "network namespace and mounts what pods use. Run it with sudo from a kubevino checkout "
    "(sudo scripts/system-packages.sh installs the Debian packages it needs)."
)
BUILDS_KUBERNETES = (
    "First start on this machine: building the pinned Kubernetes {version}, etcd, helm and "
    "containerd from source with Go (about 10 minutes on 2 cores). The local cluster runs those "
    "exact upstream versions, built from the Go module proxy rather than downloaded as release "
    "binaries; they are cached under ~/.cache/kubevino, so later starts take seconds."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubevino dev-cluster",
        description="A real local cluster from a kubevino checkout: the pinned upstream control "
        "plane and real nodes (kubelet, containerd, runc, CNI, kube-proxy) in a network namespace "
        "of their own, the project's images imported, fake Intel accelerators per node. "
        "`down` leaves nothing behind.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start a cluster and return once it is Ready")
    up.add_argument(
        "--nodes", type=int, help="this many plain nodes (kv-node, or kv-node-1..N); default 1"
    )
    up.add_argument(
        "--node",
        action="append",
        metavar="name=NAME[,render-gid=GID][,npu][,label=KEY=VALUE]",
        help="one node (repeatable): a fake Intel GPU render node owned by GID, a fake NPU, labels",
    )
    up.add_argument(
        "--images",
        default="operator,runtime",
        help="image targets to build if missing and import into every node, comma-separated "
        f"({', '.join(IMAGE_TARGETS)}; 'none': none); default operator,runtime",
    )
    up.add_argument("--timeout", type=float, default=1800, help="seconds to wait for Ready")
    for action in (up, actions.add_parser("status", help="say what runs")):
        action.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="its directory")
    down = actions.add_parser("down", help="stop the cluster and remove everything it made")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="its directory")
    down.add_argument("--timeout", type=float, default=300, help="seconds to wait for the stop")
    return parser


def main(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    args = build_parser().parse_args(argv)
    directory: Path = args.dir.resolve()
    if args.action == "status":
        return status(directory, out)
    if args.action == "down":
        return down(directory, args.timeout, out, err) if _root(err) else EXIT_USAGE
    try:
        nodes = requested_nodes(args.nodes, args.node)
        images = _images(args.images)
        _check_directory_length(directory, nodes)
    except NodeOptionError as error:
        print(f"error: {error}", file=err)
        return EXIT_USAGE
    return up(nodes, images, args.timeout, directory, out, err) if _root(err) else EXIT_USAGE


def _root(err: TextIO) -> bool:
    if os.geteuid() != 0:
        print(NEEDS_ROOT, file=err)
    return os.geteuid() == 0


def _check_directory_length(directory: Path, nodes: list[NodeOption]) -> None:
    """containerd's sockets live in each node's directory; a unix socket path has room for
    only so many bytes (containerd refuses more than 104)."""
    longest = max(len(node.name) for node in nodes)
    socket_path = directory / ("n" * longest) / "containerd" / "containerd.sock.ttrpc"
    if len(str(socket_path)) > UNIX_SOCKET_ROOM:
        room = UNIX_SOCKET_ROOM - (len(str(socket_path)) - len(str(directory)))
        raise NodeOptionError(
            f"--dir {directory}: too long for the nodes' unix sockets; use a directory of at "
            f"most {room} characters (the default is {DEFAULT_DIRECTORY})"
        )


def _images(text: str) -> list[str]:
    if text == "none":
        return []
    images = [image.strip() for image in text.split(",") if image.strip()]
    unknown = [image for image in images if image not in IMAGE_TARGETS]
    if unknown:
        raise NodeOptionError(
            f"--images: {', '.join(unknown)} is not one of {', '.join(IMAGE_TARGETS)} or 'none'"
        )
    return images


def up(
    nodes: list[NodeOption],
    images: list[str],
    timeout: float,
    directory: Path,
    out: TextIO,
    err: TextIO,
) -> int:
    from kubevino_devcluster.controlplane import REPO, kube_binaries_cached, pinned_version

    if not (REPO / "scripts" / "kube-bins.sh").exists():
        print(f"error: kubevino dev-cluster runs from a kubevino checkout; {REPO} is not one",
              file=err)  # fmt: skip
        return EXIT_USAGE
    state = read_state(directory)
    if state is not None and supervisor_alive(state):
        print(f"error: a dev cluster already runs in {directory} (pid {state.pid}): "
              "`kubevino dev-cluster status` shows it, `kubevino dev-cluster down` stops it",
              file=err)  # fmt: skip
        return 1
    if directory.exists() and any(directory.iterdir()):
        print(f"error: {directory} holds files of an earlier cluster; "
              f"`kubevino dev-cluster down --dir {directory}` removes them", file=err)  # fmt: skip
        return 1
    if not kube_binaries_cached():
        print(BUILDS_KUBERNETES.format(version=pinned_version("KUBE_VERSION")), file=out)
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / SUPERVISOR_LOG
    print(f"kubevino dev-cluster: starting {len(nodes)} node(s) in {directory}; "
          f"log: {log}", file=out, flush=True)  # fmt: skip
    began = time.monotonic()
    with log.open("ab") as log_file:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "kubevino_devcluster.supervisor", "--dir", str(directory),
             "--nodes", json.dumps([node.as_json() for node in nodes]),
             "--images", ",".join(images)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO,
        )  # fmt: skip
    try:
        ready = _wait_ready(supervisor, directory, timeout, out)
    except KeyboardInterrupt:
        print("interrupted: stopping what was started", file=err)
        _stop_supervisor(supervisor, 300)
        return 130
    if ready is None:
        print(f"error: the cluster did not become Ready; its log: {log}", file=err)
        _stop_supervisor(supervisor, 300)
        return 1
    nodes_table = _kubectl(ready, "get", "nodes", "-o", "wide")
    if nodes_table.returncode != 0:
        print(f"error: kubectl through the host kubeconfig failed: {nodes_table.stderr}", file=err)
        _stop_supervisor(supervisor, 300)
        return 1
    print(nodes_table.stdout.rstrip(), file=out)
    print(f"kubevino dev-cluster: up in {time.monotonic() - began:.1f} s "
          f"(Kubernetes {ready.kubernetes_version})", file=out)  # fmt: skip
    _print_usage(ready, out)
    return 0


def _wait_ready(
    supervisor: subprocess.Popen[bytes], directory: Path, timeout: float, out: TextIO
) -> ClusterState | None:
    """Relays the supervisor's log while it starts; its state once Ready, None if it failed."""
    deadline = time.monotonic() + timeout
    with (directory / SUPERVISOR_LOG).open(errors="replace") as log:
        while time.monotonic() < deadline:
            for line in log.readlines():
                print(f"  {line.rstrip()}", file=out, flush=True)
            state = read_state(directory)
            if state is not None and state.phase == READY:
                return state
            if supervisor.poll() is not None:
                for line in log.readlines():
                    print(f"  {line.rstrip()}", file=out)
                return None
            time.sleep(0.5)
    return None


def _stop_supervisor(supervisor: subprocess.Popen[bytes], timeout: float) -> None:
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout)


def _kubectl(state: ClusterState, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(state.directory) / "bin" / "kubectl"), "--kubeconfig", state.kubeconfig, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _print_usage(state: ClusterState, out: TextIO) -> None:
    directory = Path(state.directory)
    print(f"""
  export KUBECONFIG={state.kubeconfig}
  export PATH={directory / "bin"}:$PATH     # kubectl and helm of the pinned versions
  logs:  {directory / SUPERVISOR_LOG}, {directory}/plane/*.log, {directory}/<node>/*.log
  stop:  kubevino dev-cluster down{"" if directory == DEFAULT_DIRECTORY else f" --dir {directory}"}
""".rstrip(), file=out)  # fmt: skip
    if state.fake_devices:
        # Each node shows its own fake devices at one path: the operator's HostDevices mode and
        # the node agent must look there instead of /dev.
        print(
            f"  fake accelerators: helm install ... --set settings.deviceRoot={state.device_root}"
            f" --set nodeAgent.deviceRoot={state.device_root}",
            file=out,
        )


def status(directory: Path, out: TextIO) -> int:
    state = read_state(directory)
    if state is None:
        print(f"no dev cluster in {directory}", file=out)
        return EXIT_NOT_RUNNING
    if not supervisor_alive(state):
        print(f"{directory}: its supervisor (pid {state.pid}) is gone; "
              "`kubevino dev-cluster down` removes what is left", file=out)  # fmt: skip
        return 1
    print(f"dev cluster in {directory}: {state.phase} (supervisor pid {state.pid}, "
          f"network namespace {state.namespace or 'not yet made'})", file=out)  # fmt: skip
    if state.phase == READY:
        print(f"Kubernetes {state.kubernetes_version}, API server {state.server}", file=out)
        nodes = _kubectl(state, "get", "nodes", "-o", "wide")
        print((nodes.stdout or nodes.stderr).rstrip(), file=out)
        _print_usage(state, out)
    return 0


def down(directory: Path, timeout: float, out: TextIO, err: TextIO) -> int:
    state = read_state(directory)
    if state is None and not directory.exists():
        print(f"no dev cluster in {directory}: nothing to stop", file=out)
        return 0
    began = time.monotonic()
    if state is not None and supervisor_alive(state):
        print(f"kubevino dev-cluster: stopping (supervisor pid {state.pid}; pods drain first)",
              file=out, flush=True)  # fmt: skip
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while supervisor_alive(state):
            if time.monotonic() > deadline:
                print(f"error: still stopping after {timeout:.0f} s; its log: {state.log}",
                      file=err)  # fmt: skip
                return 1
            time.sleep(0.5)
    left = _leftovers(directory, state)
    if left:
        print(f"error: {directory}'s cluster left these behind (its log: "
              f"{directory / SUPERVISOR_LOG}):", file=err)  # fmt: skip
        for item in left:
            print(f"  {item}", file=err)
        return 1
    shutil.rmtree(directory)
    print(f"kubevino dev-cluster: stopped in {time.monotonic() - began:.1f} s; "
          f"removed {directory}", file=out)  # fmt: skip
    return 0


def _leftovers(directory: Path, state: ClusterState | None) -> list[str]:
    """Processes, network namespaces and mounts of this cluster that are still there.

    The cluster's programs name paths below its directory on their command lines (the
    kubelet's root, containerd's config, etcd's data, the shims' socket); a user's own shell,
    kubectl or tail reading a file there is not one of them."""
    left: list[str] = []
    below = f"{directory}/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(arguments[0]).name not in CLUSTER_PROGRAMS:
            continue
        if any(argument.startswith(below) or f"={below}" in argument for argument in arguments):
            left.append(f"process {entry.name}: {' '.join(arguments)[:200]}")
    if state is not None and state.namespace and Path(f"/run/netns/{state.namespace}").exists():
        left.append(f"network namespace {state.namespace}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point == str(directory) or mount_point.startswith(below):
            left.append(f"mount {mount_point}")
    return left
