"""scripts/demo.sh's Python side: the operator end to end on a throwaway local cluster (as root,
where network namespaces work), or on your own cluster with ``--cluster existing``; where
neither can run, the offline demo (render the examples, serve the bundled model, ask it).

    scripts/demo.sh                       # local cluster, torn down at the end
    scripts/demo.sh --keep                # ... left running (kubevino dev-cluster down stops it)
    KUBECONFIG=~/.kube/config scripts/demo.sh --cluster existing
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubevino_devcluster.controlplane import kube_binaries_cached


def why_no_local_cluster() -> str | None:
    """What this machine lacks for the local cluster, or None when it has everything."""
    if os.geteuid() != 0:
        return ("needs root: it runs a kubelet, containerd and runc and makes a network namespace "
                "(run `sudo scripts/demo.sh`)")  # fmt: skip
    probe = f"kv-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"needs network namespaces, which this machine refuses: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    if shutil.which("podman") is None:
        return "needs podman to build the images (scripts/system-packages.sh installs it)"
    if not kube_binaries_cached() and shutil.which("go") is None:
        return "needs a Go toolchain (>= 1.24) to build the pinned Kubernetes once"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster and models running")
    parser.add_argument(
        "--cluster",
        choices=("local", "existing"),
        default="local",
        help="existing: install into the cluster KUBECONFIG points at",
    )
    args = parser.parse_args(argv)

    from scripts import demo_cluster

    if args.cluster == "existing":
        return demo_cluster.run_existing(args.keep)
    missing = why_no_local_cluster()
    if missing is not None:
        print(f"demo: the on-cluster demo {missing}.\ndemo: running the offline demo instead.",
              flush=True)  # fmt: skip
        from scripts import demo_offline

        return demo_offline.main()
    return demo_cluster.run_local(args.keep)


if __name__ == "__main__":
    sys.exit(main())
