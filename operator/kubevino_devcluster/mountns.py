"""A node's own view of the host's files: a mount namespace in which a few host paths show the
node's directories instead.

Several nodes share one host, yet each must see its own fake devices under one device root
(the operator mounts one path on every node) and its own ``/var/lib/kubelet`` (the kubelet's
device-plugin directory is fixed there, whatever ``--root-dir`` says) and ``/var/log/pods``
(every kubelet removes log directories of pods it does not know). A holder process keeps the
namespace alive; the node's containerd, kubelet and kube-proxy join it, and runc's containers
inherit it from containerd, so hostPath volumes resolve per node.

Propagation is slave: the host's mounts reach the node, the node's never reach the host. What
the kubelet and containerd mount inside dies with the namespace.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubevino_devcluster.processes import stop_process


@dataclass
class MountNamespace:
    holder: subprocess.Popen[bytes]

    @property
    def path(self) -> str:
        return f"/proc/{self.holder.pid}/ns/mnt"

    def command(
        self, args: Sequence[str], network: str | None = None, cwd: Path | None = None
    ) -> list[str]:
        """``args`` run inside this mount namespace (and the network namespace at ``network``),
        in ``cwd`` (joining a mount namespace otherwise starts in its root)."""
        return [
            "nsenter",
            f"--mount={self.path}",
            *([f"--net={network}"] if network else []),
            f"--wd={cwd or Path.cwd()}",
            "--",
            *args,
        ]

    def bind(self, source: Path, target: Path) -> None:
        subprocess.run(
            self.command(["mount", "--bind", str(source), str(target)], cwd=Path("/")),
            check=True,
            capture_output=True,
        )

    def mount_points(self) -> list[str]:
        return [
            line.split()[4]
            for line in Path(f"/proc/{self.holder.pid}/mountinfo").read_text().splitlines()
        ]

    def unmount_under(self, prefixes: Sequence[str]) -> None:
        """Unmount (deepest first) whatever the node mounted inside under ``prefixes``."""
        for _ in range(5):
            mounts = [m for m in self.mount_points() if any(m.startswith(p) for p in prefixes)]
            if not mounts:
                return
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(
                    self.command(["umount", "-l", mount], cwd=Path("/")),
                    capture_output=True,
                    check=False,
                )


@contextmanager
def shared_subtree(directory: Path) -> Iterator[None]:
    """Mounts made on the host under ``directory`` (a test's tmpfs volume, say) reach the nodes'
    mount namespaces made afterwards: the host's root is private on these machines, so without
    a shared mount here a node would only ever see the empty directory below."""
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(directory)], check=True)
        yield
    finally:
        # Lazily: with it goes whatever a caller left mounted below.
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def _namespace_of(pid: int | str) -> str:
    try:
        return str(Path(f"/proc/{pid}/ns/mnt").readlink())
    except FileNotFoundError:  # the holder already exited: the caller says why
        return ""


@contextmanager
def mount_namespace(binds: Sequence[tuple[Path, Path]]) -> Iterator[MountNamespace]:
    """A new mount namespace with each ``(source, target)`` bind-mounted inside it; the
    targets must exist on the host (they stay untouched there)."""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "slave", "--", "sleep", "infinity"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    namespace = MountNamespace(holder)
    try:
        ours = _namespace_of("self")
        deadline = time.monotonic() + 10
        # unshare execs sleep once the namespace exists: until then the pid shows ours.
        while _namespace_of(holder.pid) in (ours, ""):
            if holder.poll() is not None or time.monotonic() > deadline:
                error = holder.stderr.read().decode() if holder.stderr else ""
                raise RuntimeError(f"unshare --mount did not start: {error}")
            time.sleep(0.02)
        for source, target in binds:
            namespace.bind(source, target)
        yield namespace
    finally:
        stop_process(holder)
