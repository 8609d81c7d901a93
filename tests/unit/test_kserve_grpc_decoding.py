"""KServe gRPC decoding's cases (kserve_grpc_cases.py), run in an interpreter of their own: the
runtime's gRPC module and tritonclient's (imported by the runtime and fuzz tiers) define the
same protobuf symbols, and one process's descriptor pool accepts only one of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("kserve_grpc_cases.py")


def test_grpc_bodies_and_tensors_are_decoded_into_client_errors_or_inputs() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout
