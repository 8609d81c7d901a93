"""A cgroup of a node's own, under which its kubelet makes ``kubepods``.

Two kubelets on one host must not share ``/kubepods``: each would treat the other's pods'
cgroups as its own to clean up. The kubelet takes a ``cgroupRoot`` but requires it to exist, in
every hierarchy it uses: made here, and removed (with whatever the kubelet and runc left under
it) when the node is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def hierarchies() -> list[Path]:
    """Mount points of the machine's cgroup hierarchies (v1 controllers, and/or v2)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        filesystem = fields[fields.index("-") + 1]
        if filesystem in ("cgroup", "cgroup2"):
            found.append(Path(fields[4]))
    return found


def _inherit_cpuset(directory: Path) -> None:
    """A v1 cpuset cgroup starts with no CPUs and no memory nodes: no task could join it."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        own = directory / name
        if own.exists() and not own.read_text().strip():
            own.write_text((directory.parent / name).read_text())


def _delegate_controllers(directory: Path) -> None:
    """On cgroup v2 the kubelet's children get only the controllers this one passes down."""
    parent = (directory.parent / "cgroup.subtree_control").read_text().split()
    if parent:
        (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in parent))


def _remove_tree(root: Path) -> None:
    if not root.is_dir():
        return
    nested = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for directory in [*nested, root]:
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError as error:  # still busy: say so rather than hide it
            raise RuntimeError(f"cgroup {directory} left behind: {error}") from error


@contextmanager
def cgroup_root(name: str) -> Iterator[str]:
    """``/<name>`` in every hierarchy, for the kubelet's ``cgroupRoot``."""
    made: list[Path] = []
    try:
        for hierarchy in hierarchies():
            directory = hierarchy / name
            directory.mkdir()
            made.append(directory)
            _inherit_cpuset(directory)
            if (directory / "cgroup.subtree_control").exists():
                _delegate_controllers(directory)
        yield f"/{name}"
    finally:
        errors = []
        for directory in made:
            try:
                _remove_tree(directory)
            except RuntimeError as error:
                errors.append(str(error))
        if errors:
            raise RuntimeError("; ".join(errors))
