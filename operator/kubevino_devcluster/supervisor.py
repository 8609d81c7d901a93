"""The process that holds a dev cluster while the user's shell goes on: started detached by
``kubevino dev-cluster up``, it runs ``dev_cluster()`` and the loopback forwarder, writes the
state file once the cluster is Ready, and on SIGTERM (``kubevino dev-cluster down``) stops
everything it made and exits.

    python -m kubevino_devcluster.supervisor --dir DIR --nodes JSON --images operator,runtime
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kubevino_devcluster.cluster import DevCluster, NodeSpec, dev_cluster
from kubevino_devcluster.controlplane import pinned_version, write_kubeconfig
from kubevino_devcluster.forwarder import Forwarder, loopback_listener
from kubevino_devcluster.state import (
    READY,
    STOPPING,
    ClusterState,
    own_start_ticks,
    remove_state,
    write_state,
)

HOST_KUBECONFIG = "kubeconfig"
TOOLS = ("kubectl", "helm")


class StopRequested(BaseException):
    """SIGTERM, SIGINT or SIGHUP arrived: unwind, stopping what was started so far."""


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    # Only the first signal unwinds: a second one must not cut the teardown short.
    for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(handled, signal.SIG_IGN)
    raise StopRequested(signal.Signals(signum).name)


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def node_specs_from_json(text: str) -> list[NodeSpec]:
    return [
        NodeSpec(
            name=item["name"],
            render_gid=item.get("render_gid"),
            npu=bool(item.get("npu", False)),
            labels=tuple((key, value) for key, value in item.get("labels", [])),
        )
        for item in json.loads(text)
    ]


def _publish(cluster: DevCluster, state: ClusterState, forwarder: Forwarder) -> None:
    """The host-side kubeconfig and tool links, then the state file that says Ready."""
    directory = Path(state.directory)
    pki = cluster.plane.directory / "pki"
    kubeconfig = directory / HOST_KUBECONFIG
    server = f"https://127.0.0.1:{forwarder.port}"
    write_kubeconfig(kubeconfig, server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
    tools = directory / "bin"
    tools.mkdir(exist_ok=True)
    for tool in TOOLS:
        link = tools / tool
        link.unlink(missing_ok=True)
        link.symlink_to(cluster.plane.binary(tool))
    state.phase = READY
    state.kubeconfig = str(kubeconfig)
    state.server = server
    state.namespace = cluster.namespace.name
    state.nodes = [node.name for node in cluster.nodes]
    state.kubernetes_version = pinned_version("KUBE_VERSION")
    state.binaries = str(cluster.plane.binaries)
    state.device_root = str(cluster.device_root)
    state.fake_devices = any(spec.devices() for spec in cluster.specs)
    write_state(state)


def _delete_workloads(cluster: DevCluster) -> None:
    """Every controller of pods, so that draining the nodes is not a race with controllers
    re-creating what it deletes (the InferenceModels first: the operator re-creates their
    Deployments)."""
    for kinds in ("inferencemodels.kubevino.io", "deployments,statefulsets,daemonsets,jobs"):
        cluster.plane.kubectl(
            "delete", kinds, "--all", "--all-namespaces", "--wait=false", check=False
        )


def supervise(directory: Path, specs: Sequence[NodeSpec], images: Sequence[str]) -> int:
    began = time.monotonic()
    state = ClusterState(os.getpid(), own_start_ticks(), str(directory))
    write_state(state)
    # Made before dev_cluster() steps this thread into the cluster's namespace: the listener
    # belongs to the host's loopback, where the user's kubectl connects.
    listener = loopback_listener()
    try:
        say(f"preparing: binaries (scripts/kube-bins.sh), images {', '.join(images) or 'none'}")
        with dev_cluster(directory, specs, images) as cluster:
            forwarder = Forwarder(listener, cluster.namespace, cluster.plane.api_port)
            forwarder.start()
            try:
                state.ready_seconds = round(time.monotonic() - began, 1)
                _publish(cluster, state, forwarder)
                nodes = ", ".join(state.nodes)
                say(f"ready: {nodes} in {state.ready_seconds} s; API server {state.server}")
                while True:
                    time.sleep(3600)
            finally:
                state.phase = STOPPING
                write_state(state)
                say("stopping: draining pods, stopping nodes and the control plane")
                forwarder.stop()
                _delete_workloads(cluster)
    except StopRequested as stop:
        say(f"{stop}: stopped, nothing left running")
        return 0
    finally:
        listener.close()
        remove_state(directory)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubevino_devcluster.supervisor")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--nodes", required=True, help="JSON list of node specs")
    parser.add_argument("--images", default="operator,runtime")
    args = parser.parse_args(argv)
    for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(handled, _request_stop)
    images = [image for image in args.images.split(",") if image]
    try:
        return supervise(args.dir.resolve(), node_specs_from_json(args.nodes), images)
    except Exception as error:
        traceback.print_exc()
        say(f"failed: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
