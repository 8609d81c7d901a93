"""What a running dev cluster tells the commands that come after ``up``: one JSON file in the
cluster's directory, written by its supervisor process, read by ``status`` and ``down``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DIRECTORY = Path("/tmp/kubevino-dev-cluster")
STATE_FILE = "state.json"
SUPERVISOR_LOG = "supervisor.log"

STARTING = "starting"
READY = "ready"
STOPPING = "stopping"


@dataclass
class ClusterState:
    pid: int
    # The supervisor's start time in clock ticks since boot (/proc/PID/stat): a pid the kernel
    # has since given to another process never matches it.
    started_ticks: int
    directory: str
    phase: str = STARTING
    kubeconfig: str = ""
    server: str = ""
    namespace: str = ""
    nodes: list[str] = field(default_factory=list)
    kubernetes_version: str = ""
    binaries: str = ""
    ready_seconds: float = 0.0
    # Where each node shows its own fake devices (one path, a different view per node).
    device_root: str = ""
    fake_devices: bool = False

    @property
    def log(self) -> Path:
        return Path(self.directory) / SUPERVISOR_LOG


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None when no such process lives."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def write_state(state: ClusterState) -> None:
    path = Path(state.directory) / STATE_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    partial.rename(path)


def read_state(directory: Path) -> ClusterState | None:
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return ClusterState(**data)


def supervisor_alive(state: ClusterState) -> bool:
    return process_start_ticks(state.pid) == state.started_ticks


def remove_state(directory: Path) -> None:
    (directory / STATE_FILE).unlink(missing_ok=True)


def own_start_ticks() -> int:
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None  # this process is alive
    return ticks
