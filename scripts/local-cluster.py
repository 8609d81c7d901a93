"""Try kubevino without a cluster of your own: a real control plane on loopback (pinned
upstream binaries, built on first use), the CRD, and the operator. Ctrl-C stops everything.

    .venv/bin/python scripts/local-cluster.py
    # then, in another shell, with the KUBECONFIG it prints:
    kubectl apply -f examples/cpu.yaml && kubectl get inferencemodels

No node runs here, so pods stay Pending and models report Ready=False (RollingOut).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness.operator import OperatorProcess

from kubevino_devcluster.controlplane import REPO, control_plane
from kubevino_operator.rbac import service_account_objects


def main() -> int:
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with (
        tempfile.TemporaryDirectory(prefix="kubevino-cluster-") as scratch,
        control_plane(Path(scratch)) as plane,
    ):
        plane.install_crds()
        plane.kubectl("create", "namespace", "kubevino-system")
        plane.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump_all(service_account_objects("kubevino-system"))
        )
        operator = OperatorProcess(
            plane.admin_kubeconfig,
            REPO / "examples" / "settings.yaml",
            plane.directory / "operator.log",
        )
        operator.start()
        print(f"export KUBECONFIG={plane.admin_kubeconfig}")
        print(f"kubectl: {plane.binary('kubectl')}")
        print(f"operator log: {plane.directory / 'operator.log'}  (Ctrl-C stops everything)")
        try:
            while not stop:
                time.sleep(0.5)
        finally:
            operator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
