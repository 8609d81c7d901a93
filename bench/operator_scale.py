"""500 InferenceModels applied at once against a real control plane.

Prints: the time until every Deployment exists and every status is current, the operator's
peak RSS, the operator's writes on a no-op resync (restart), and the ratio to the floor — the
same 500 rendered bundles applied directly with ``kubectl apply --server-side``.
Goals: <= 60 s, <= 1.5x the floor, RSS <= 150 MB, 0 no-op writes.

    python bench/operator_scale.py [--models 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.audit import OPERATOR_USER, operator_writes, requests_by, tally
from tests.harness.controlplane import ControlPlane, control_plane, write_kubeconfig
from tests.harness.operator import OperatorProcess

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


def count_current(plane: ControlPlane, namespace: str) -> tuple[int, int]:
    """(Deployments that exist, models whose status describes their current generation)."""
    deployments = json.loads(
        plane.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout
    )["items"]
    models = json.loads(
        plane.kubectl("get", "inferencemodels", "-n", namespace, "-o", "json").stdout
    )["items"]
    current = 0
    for model in models:
        status = model.get("status") or {}
        conditions: list[dict[str, Any]] = status.get("conditions") or []
        ready = next((c for c in conditions if c["type"] == "Ready"), {})
        if ready.get("observedGeneration") == model["metadata"]["generation"]:
            current += 1
    return len(deployments), current


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


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    args = parser.parse_args()
    count = args.models
    with (
        tempfile.TemporaryDirectory(prefix="kubevino-scale-") as scratch,
        control_plane(Path(scratch), audited_readers=(OPERATOR_USER,)) as plane,
    ):
        plane.install_crds()
        for namespace in ("kubevino-system", "scale", "floor"):
            plane.kubectl("create", "namespace", namespace)
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
        operator.start()
        try:
            time.sleep(3)

            # The floor: the same bundles, rendered offline, applied directly.
            bundles: list[dict[str, Any]] = []
            for index in range(count):
                model = InferenceModel.model_validate(manifest(f"m{index}", "floor"))
                result = render(model, Settings())
                assert isinstance(result, Rendered)
                bundles.extend(result.objects)
            floor_file = plane.directory / "floor.yaml"
            floor_file.write_text(yaml.safe_dump_all(bundles))
            started = time.perf_counter()
            plane.kubectl("apply", "--server-side", "-f", str(floor_file))
            floor = time.perf_counter() - started
            wait_settled(plane, "floor", count)

            models_file = plane.directory / "models.yaml"
            models_file.write_text(
                yaml.safe_dump_all([manifest(f"m{i}", "scale") for i in range(count)])
            )
            started, started_at = time.perf_counter(), time.time()
            plane.kubectl("apply", "--server-side", "-f", str(models_file))
            while True:
                deployments, current = count_current(plane, "scale")
                if deployments == count and current == count:
                    break
                if time.perf_counter() - started > 600:
                    print(f"gave up: {deployments} Deployments, {current} current statuses")
                    return 1
                time.sleep(1)
            elapsed = time.perf_counter() - started
            during = tally(requests_by(plane.audit_log, OPERATOR_USER, started_at, time.time()))
            assert operator.process is not None
            rss = peak_rss_mb(operator.process.pid)

            # Let the world settle (ReplicaSets, pods, the statuses that follow them): a no-op
            # resync is measured from a quiet operator, not one still catching up.
            quiet_since = time.time()
            deadline = time.time() + 180
            while time.time() < deadline:
                time.sleep(2)
                if operator_writes(plane.audit_log, quiet_since):
                    quiet_since = time.time()
                elif time.time() - quiet_since >= 10:
                    break
            operator.stop()
            restarted = time.time()
            operator.start()
            time.sleep(args.resync_seconds)
            writes = operator_writes(plane.audit_log, restarted)
        finally:
            operator.stop()

    print(f"models                         {count}")
    print(f"operator: all Deployments + current statuses  {elapsed:6.1f} s   (goal <= 60 s)")
    print(f"floor: kubectl apply --server-side of bundles {floor:6.1f} s")
    print(f"ratio operator / floor         {elapsed / floor:6.2f}        (goal <= 1.5)")
    print(f"operator peak RSS              {rss:6.1f} MB     (goal <= 150 MB)")
    print(f"writes on a no-op resync       {len(writes):6d}        (goal 0)")
    for write in writes[:5]:
        print(f"  {write['verb']} {write['uri']}")
    print(f"operator requests until current {sum(during.values()):6d}        (per kind below)")
    for what, how_many in during.most_common():
        print(f"  {how_many:6d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
