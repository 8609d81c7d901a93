"""The committed gRPC code is what scripts/gen-proto.sh makes from the committed .proto."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.unit.builders import REPO

GENERATED = ("kserve_v2_pb2.py", "kserve_v2_pb2.pyi", "kserve_v2_pb2_grpc.py")


def test_generated_grpc_code_matches_the_proto(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(
        [str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True, env=env, cwd=REPO
    )
    committed = REPO / "runtime" / "kubevino_runtime" / "protocols"
    fresh = tmp_path / "kubevino_runtime" / "protocols"
    for name in GENERATED:
        assert (fresh / name).read_text() == (committed / name).read_text(), (
            f"{name} is stale: run scripts/gen-proto.sh"
        )
