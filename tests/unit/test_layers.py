"""The packages' layers: the operator and the runtime share only kubevino_common, so each image
carries its own side alone (the runtime image has no operator code and the operator none of the
runtime's)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {
    "kubevino_common": REPO / "runtime" / "kubevino_common",
    "kubevino_devcluster": REPO / "operator" / "kubevino_devcluster",
    "kubevino_operator": REPO / "operator" / "kubevino_operator",
    "kubevino_runtime": REPO / "runtime" / "kubevino_runtime",
}
MAY_IMPORT = {
    "kubevino_common": {"kubevino_common"},
    # The local cluster is a checkout's tool: it may use the operator's code, never the reverse.
    "kubevino_devcluster": {"kubevino_devcluster", "kubevino_operator", "kubevino_common"},
    "kubevino_operator": {"kubevino_operator", "kubevino_common"},
    "kubevino_runtime": {"kubevino_runtime", "kubevino_common"},
}


def kubevino_imports(source: Path) -> set[str]:
    """Top-level kubevino packages a module imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.startswith("kubevino")}
    return found


# The one hand-over across layers: `kubevino dev-cluster` passes its arguments to the local
# cluster's own command, imported only when asked for (the operator image has no copy of it).
HAND_OVERS = {"operator/kubevino_operator/cli.py": {"kubevino_devcluster"}}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_itself_and_the_shared_one(package: str) -> None:
    def crossing_of(module: Path) -> set[str]:
        allowed = MAY_IMPORT[package] | HAND_OVERS.get(str(module.relative_to(REPO)), set())
        return kubevino_imports(module) - allowed

    crossing = {
        str(module.relative_to(REPO)): sorted(crossing_of(module))
        for module in sorted(PACKAGES[package].rglob("*.py"))
        if crossing_of(module)
    }
    assert crossing == {}


@pytest.mark.parametrize(
    ("package", "modules"),
    [
        ("kubevino_runtime.server", {"kubevino_common", "kubevino_runtime"}),
        ("kubevino_runtime.fetch", {"kubevino_common", "kubevino_runtime"}),
        ("kubevino_operator.cli", {"kubevino_common", "kubevino_operator"}),
    ],
)
def test_importing_one_side_loads_nothing_of_the_other(package: str, modules: set[str]) -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {package}; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules "
            "if m.startswith('kubevino')})))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(loaded) == modules
