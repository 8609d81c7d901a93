"""The control plane's controllers held still, so what a phase costs is only what it asks of the
API server (no ReplicaSets, pods or Deployment statuses appear meanwhile)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from kubevino_devcluster.controlplane import ControlPlane

CONTROLLERS = ("kube-controller-manager", "kube-scheduler")


@contextmanager
def controllers_paused(plane: ControlPlane) -> Iterator[None]:
    """The controllers that act on Deployments stopped (SIGSTOP; they run without leader
    election, so nothing expires while they are)."""
    for name in CONTROLLERS:
        os.kill(plane.processes[name].pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for name in CONTROLLERS:
            os.kill(plane.processes[name].pid, signal.SIGCONT)
