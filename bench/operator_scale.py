"""500 InferenceModels applied at once against a real control plane.

Prints: the time until every Deployment exists and every status is current, the operator's
peak RSS, the operator's writes on a no-op resync (restart), and the ratio to the floor — the
same 500 rendered bundles applied directly with ``kubectl apply --server-side``.
Goals: <= 60 s, <= 1.5x the floor, RSS <= 150 MB, 0 no-op writes.

The floor's clock stops when kubectl returns, before the controllers turn its Deployments into
ReplicaSets and pods; on 2 cores that aftermath takes the same CPU the operator needs. So the
ratio is measured with the controller-manager and scheduler paused for both sides, and the
operator is timed a second time with them running, against the 60 s goal. A last phase
registers Ready nodes without kubelets (``--nodes``) and binds the models' claim, so the
scheduler spreads the pods over them as the operator works.

    python bench/operator_scale.py [--models 500] [--nodes 4] [--profile stacks.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.audit import OPERATOR_USER, operator_writes, requests_by, tally
from tests.harness.controllers import controllers_paused
from tests.harness.fakenodes import fake_nodes
from tests.harness.operator import OperatorProcess

from kubevino_devcluster.controlplane import ControlPlane, control_plane, write_kubeconfig
from kubevino_operator.api import InferenceModel
from kubevino_operator.rbac import service_account_objects
from kubevino_operator.render import Rendered, render
from kubevino_operator.settings import Settings


def manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubevino.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"source": {"pvc": {"claimName": "models"}}},
            "performance": {"hint": "THROUGHPUT"},
        },
    }


class Progress:
    """A namespace's Deployments and current model statuses as two watches report them
    (``kubectl get --watch``): each change is sent once, where listing every object every second
    made the API server and kubectl pay for the bench on the cores the operator needs, and
    stopped the clock up to a second late."""

    MODELS = (
        "{.metadata.name} {.metadata.generation} "
        '{.status.conditions[?(@.type=="Ready")].observedGeneration}{"\\n"}'
    )

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.deployments: set[str] = set()
        self.observed: dict[str, bool] = {}  # model → its status describes its generation
        self.changed = threading.Condition()
        self._watches = [
            self._watch(plane, namespace, "deployments", '{.metadata.name}{"\\n"}'),
            self._watch(plane, namespace, "inferencemodels", self.MODELS),
        ]

    def _watch(
        self, plane: ControlPlane, namespace: str, plural: str, template: str
    ) -> subprocess.Popen[str]:
        watch = subprocess.Popen(
            [plane.binary("kubectl"), "--kubeconfig", str(plane.admin_kubeconfig), "get", plural,
             "-n", namespace, "--watch", "-o", f"jsonpath={template}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, args=(watch, plural), daemon=True).start()
        return watch

    def _read(self, watch: subprocess.Popen[str], plural: str) -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            fields = line.split()
            with self.changed:
                if plural == "deployments" and fields:
                    self.deployments.add(fields[0])
                elif fields:  # name, generation, and the Ready condition's observedGeneration
                    self.observed[fields[0]] = len(fields) == 3 and fields[2] == fields[1]
                self.changed.notify_all()

    def wait(self, count: int, limit: float) -> tuple[int, int]:
        """Until ``count`` Deployments exist and ``count`` statuses are current, or ``limit``
        seconds: (Deployments, current statuses)."""
        deadline = time.monotonic() + limit
        with self.changed:
            while not self._done(count) and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())
            return len(self.deployments), sum(self.observed.values())

    def _done(self, count: int) -> bool:
        return len(self.deployments) >= count and sum(self.observed.values()) >= count

    def stop(self) -> None:
        for watch in self._watches:
            watch.terminate()
            watch.wait()


def wait_settled(plane: ControlPlane, namespace: str, pods: int, limit: float = 300) -> float:
    """Wait until the controllers are done with a namespace (every pod made and seen by the
    scheduler), so one phase's aftermath does not slow the next; return the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        items = json.loads(plane.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)[
            "items"
        ]
        seen = [
            pod
            for pod in items
            if any(c["type"] == "PodScheduled" for c in pod.get("status", {}).get("conditions", []))
        ]
        if len(seen) >= pods:
            break
        time.sleep(2)
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(plane: ControlPlane, operator: OperatorProcess) -> dict[str, float]:
    """Per process; "kubectl" is the bench's own children (its kubectl runs: the apply and the
    watches; py-spy too when profiling)."""
    pids = {name: process.pid for name, process in plane.processes.items()}
    if operator.process is not None:
        pids["operator"] = operator.process.pid
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **{name: cpu_seconds(pid) for name, pid in pids.items()},
        "kubectl": children.ru_utime + children.ru_stime,
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# 500 objects applied one after the other: minutes, not seconds, on a busy machine.
APPLY_TIMEOUT = 900


@dataclass
class Phase:
    seconds: float
    cpu: dict[str, float]
    requests: Counter[str]


def operator_phase(
    plane: ControlPlane,
    operator: OperatorProcess,
    namespace: str,
    count: int,
    profile: Path | None = None,
) -> Phase:
    """Apply ``count`` models to ``namespace``; time until every Deployment exists and every
    status describes its model's generation. With ``profile``, py-spy samples the operator
    meanwhile and writes its collapsed stacks there."""
    models_file = plane.directory / f"{namespace}.yaml"
    models_file.write_text(yaml.safe_dump_all([manifest(f"m{i}", namespace) for i in range(count)]))
    cpu_before = cpu_by_process(plane, operator)
    progress = Progress(plane, namespace)
    try:
        with sampled(operator, profile):
            started, started_at = time.perf_counter(), time.time()
            plane.kubectl("apply", "--server-side", "-f", str(models_file), timeout=APPLY_TIMEOUT)
            deployments, current = progress.wait(count, limit=900)
            seconds = time.perf_counter() - started
    finally:
        progress.stop()
    if deployments < count or current < count:
        raise SystemExit(f"gave up: {deployments} Deployments, {current} current statuses")
    cpu_after = cpu_by_process(plane, operator)
    return Phase(
        seconds,
        {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        tally(requests_by(plane.audit_log, OPERATOR_USER, started_at, time.time())),
    )


@contextmanager
def sampled(operator: OperatorProcess, profile: Path | None) -> Iterator[None]:
    """py-spy (``pip install py-spy``) attached to the operator for the block, if asked."""
    if profile is None:
        yield
        return
    assert operator.process is not None
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
         str(operator.process.pid), "--format", "raw", "--rate", "200", "--nonblocking",
         "--output", str(profile)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1)  # attached before the clock starts
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def bound_model_claim(plane: ControlPlane, namespace: str) -> None:
    """The PersistentVolumeClaim the models name, bound (to a host path nothing reads), so the
    scheduler can place their pods: an unbound or missing claim keeps them unschedulable."""
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-models"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "hostPath": {"path": "/nonexistent/models"},
            "claimRef": {"namespace": namespace, "name": "models"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "models", "namespace": namespace},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": f"{namespace}-models",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([volume, claim]))
    plane.kubectl(
        "wait", "pvc/models", "-n", namespace, "--for=jsonpath={.status.phase}=Bound",
        "--timeout=120s", timeout=130,
    )  # fmt: skip


def pods_per_node(plane: ControlPlane, namespace: str) -> Counter[str]:
    pods = json.loads(plane.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    return Counter(pod["spec"].get("nodeName") or "(not scheduled)" for pod in pods)


def wait_idle(pid: int, limit: float = 120) -> None:
    """Until a process uses under a tenth of a core (the scheduler retrying earlier phases'
    unschedulable pods when nodes appear)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(2)
        if cpu_seconds(pid) - before < 0.2:
            return


def models_only_phase(plane: ControlPlane, operator: OperatorProcess, count: int) -> Phase:
    """The 500 InferenceModels alone, applied before the operator runs: the part of the
    operator's side that is the API server creating custom resources (schema, CEL rules), which
    the floor does not pay. The namespace is deleted again before the operator starts."""
    plane.kubectl("create", "namespace", "models-only")
    models_file = plane.directory / "models-only.yaml"
    models = [manifest(f"m{i}", "models-only") for i in range(count)]
    models_file.write_text(yaml.safe_dump_all(models))
    with controllers_paused(plane):
        cpu_before = cpu_by_process(plane, operator)
        started = time.perf_counter()
        plane.kubectl("apply", "--server-side", "-f", str(models_file), timeout=APPLY_TIMEOUT)
        seconds = time.perf_counter() - started
        cpu_after = cpu_by_process(plane, operator)
    plane.kubectl("delete", "namespace", "models-only", "--wait=true", timeout=APPLY_TIMEOUT)
    spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    return Phase(seconds, spent, Counter())


def floor_phase(plane: ControlPlane, operator: OperatorProcess, count: int) -> Phase:
    """The same bundles, rendered offline, applied directly."""
    plane.kubectl("create", "namespace", "floor")
    bundles: list[dict[str, Any]] = []
    for index in range(count):
        model = InferenceModel.model_validate(manifest(f"m{index}", "floor"))
        result = render(model, Settings())
        assert isinstance(result, Rendered)
        bundles.extend(result.objects)
    floor_file = plane.directory / "floor.yaml"
    floor_file.write_text(yaml.safe_dump_all(bundles))
    cpu_before = cpu_by_process(plane, operator)
    started = time.perf_counter()
    plane.kubectl("apply", "--server-side", "-f", str(floor_file), timeout=APPLY_TIMEOUT)
    seconds = time.perf_counter() - started
    cpu_after = cpu_by_process(plane, operator)
    spent = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    return Phase(seconds, spent, Counter())


def wait_quiet(plane: ControlPlane, seconds: float = 10, limit: float = 180) -> None:
    """Until the operator has written nothing for ``seconds``."""
    quiet_since = time.time()
    deadline = time.time() + limit
    while time.time() < deadline:
        time.sleep(2)
        if operator_writes(plane.audit_log, quiet_since):
            quiet_since = time.time()
        elif time.time() - quiet_since >= seconds:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.add_argument("--nodes", type=int, default=4, help="fake Ready nodes, last phase")
    parser.add_argument(
        "--profile", type=Path, help="py-spy's collapsed stacks of the operator, paused phase"
    )
    args = parser.parse_args()
    count = args.models
    with (
        tempfile.TemporaryDirectory(prefix="kubevino-scale-") as scratch,
        control_plane(Path(scratch), audited_readers=(OPERATOR_USER,)) as plane,
    ):
        plane.install_crds()
        plane.kubectl("create", "namespace", "kubevino-system")
        plane.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump_all(service_account_objects("kubevino-system"))
        )
        token = plane.kubectl(
            "create", "token", "kubevino-operator", "-n", "kubevino-system", "--duration", "2h"
        ).stdout.strip()
        kubeconfig = plane.directory / "operator.kubeconfig"
        write_kubeconfig(
            kubeconfig, plane.server, plane.directory / "pki" / "ca.crt", None, None, token=token
        )
        settings_file = plane.directory / "settings.yaml"
        settings_file.write_text("{}\n")
        operator = OperatorProcess(kubeconfig, settings_file, plane.directory / "operator.log")
        models_only = models_only_phase(plane, operator, count)
        operator.start()
        try:
            time.sleep(3)
            say(f"models                                   {count}")
            with controllers_paused(plane):
                floor = floor_phase(plane, operator, count)
                plane.kubectl("create", "namespace", "scale-paused")
                paused = operator_phase(plane, operator, "scale-paused", count, args.profile)
            report_paused(floor, paused, models_only)
            # The controllers catch up with both (ReplicaSets, pods, scheduling) before the
            # next phase, so it does not pay for them.
            wait_settled(plane, "floor", count)
            wait_settled(plane, "scale-paused", count)
            wait_quiet(plane)
            plane.kubectl("create", "namespace", "scale")
            running = operator_phase(plane, operator, "scale", count)
            assert operator.process is not None
            rss = peak_rss_mb(operator.process.pid)
            say("controllers running (ReplicaSets, pods, scheduling on the same cores):")
            say(f"  operator: Deployments + current statuses          {running.seconds:6.1f} s"
                "     (goal <= 60 s)")  # fmt: skip
            say(f"  CPU seconds: {cpu(running)}")
            say(f"operator peak RSS, {2 * count} models       {rss:6.1f} MB  (goal <= 150 MB)")
            wait_settled(plane, "scale", count)
            wait_quiet(plane)
            with fake_nodes(plane, args.nodes):
                wait_idle(plane.processes["kube-scheduler"].pid)
                plane.kubectl("create", "namespace", "scale-nodes")
                bound_model_claim(plane, "scale-nodes")
                spread = operator_phase(plane, operator, "scale-nodes", count)
                placed = time.perf_counter()
                wait_settled(plane, "scale-nodes", count)
                placed_after = spread.seconds + time.perf_counter() - placed
                placement = pods_per_node(plane, "scale-nodes")
                say(f"{args.nodes} Ready nodes (no kubelets), the models' claim bound, "
                    "controllers running:")  # fmt: skip
                say(f"  operator: Deployments + current statuses          {spread.seconds:6.1f} s")
                say(f"  every pod placed on a node                        {placed_after:6.1f} s")
                spread_over = ", ".join(f"{n} {c}" for n, c in sorted(placement.items()))
                say(f"  pods per node: {spread_over}")
                say(f"  CPU seconds: {cpu(spread)}")
                wait_quiet(plane)
                say(f"operator peak RSS, {3 * count} models       "
                    f"{peak_rss_mb(operator.process.pid):6.1f} MB")  # fmt: skip
                operator.stop()
                restarted = time.time()
                operator.start()
                time.sleep(args.resync_seconds)
                writes = operator_writes(plane.audit_log, restarted)
        finally:
            operator.stop()
    say(f"writes on a no-op resync of {3 * count} models {len(writes):6d}     (goal 0)")
    for write in writes[:5]:
        say(f"  {write['verb']} {write['uri']}")
    for name, phase in (("paused", paused), ("running", running), ("running, nodes", spread)):
        total = sum(phase.requests.values())
        say(f"operator requests, controllers {name}: {total} ({total / count:.1f} per model)")
        for what, how_many in phase.requests.most_common():
            say(f"  {how_many:6d}  {what}")
    return 0


def say(line: str) -> None:
    print(line, flush=True)  # as each phase ends: a long run shows what it has so far


def cpu(phase: Phase) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(phase.cpu.items()))


def report_paused(floor: Phase, paused: Phase, models_only: Phase) -> None:
    say("controllers paused (each side pays only for what it asks of the API server):")
    say(f"  floor: kubectl apply --server-side of the bundles {floor.seconds:6.1f} s")
    say(f"  operator: Deployments + current statuses          {paused.seconds:6.1f} s")
    ratio = paused.seconds / floor.seconds
    say(f"  ratio operator / floor                            {ratio:6.2f}     (goal <= 1.5)")
    apiserver = paused.cpu["kube-apiserver"] / floor.cpu["kube-apiserver"]
    say(f"  API server CPU seconds, operator / floor          {apiserver:6.2f}"
        "     (what the operator asks of it; less sensitive to a busy machine)")  # fmt: skip
    say(
        f"  of the operator's side, the InferenceModels alone   {models_only.seconds:6.1f} s"
        f"     (API server CPU {models_only.cpu['kube-apiserver']:.1f} s, operator not running)"
    )
    say(f"  CPU seconds, floor: {cpu(floor)}")
    say(f"  CPU seconds, operator: {cpu(paused)}")


if __name__ == "__main__":
    sys.exit(main())
