"""The committed gRPC code is what scripts/gen-proto.sh makes from the committed .proto files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.unit.builders import REPO

PROTOCOLS = Path("kubevino_runtime") / "protocols"
GENERATED_PATTERNS = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def _generated(root: Path) -> dict[Path, str]:
    base = root / PROTOCOLS
    return {
        path.relative_to(base): path.read_text()
        for pattern in GENERATED_PATTERNS
        for path in base.rglob(pattern)
    }


def test_generated_grpc_code_matches_the_protos(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        [str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True, env=env, cwd=REPO
    )
    fresh = _generated(tmp_path)
    committed = _generated(REPO / "runtime")
    assert Path("kserve_v2_pb2.py") in fresh
    assert Path("tfs_api/tensorflow_serving/apis/prediction_service_pb2_grpc.py") in fresh
    assert sorted(committed) == sorted(fresh), "generated files differ: run scripts/gen-proto.sh"
    stale = [str(name) for name, text in fresh.items() if committed[name] != text]
    assert not stale, f"stale generated code, run scripts/gen-proto.sh: {', '.join(stale)}"
