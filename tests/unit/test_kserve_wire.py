"""The ModelInfer wire splitter's cases (kserve_wire_cases.py), run in an interpreter of their
own: the runtime's gRPC module and tritonclient's (imported by the runtime tier) define the same
protobuf symbols, and one process's descriptor pool accepts only one of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("kserve_wire_cases.py")


def test_model_infer_requests_are_split_without_copying_their_tensors() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout
