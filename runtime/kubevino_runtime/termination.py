"""The container's termination message: where Kubernetes lets a process say why it ended."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TERMINATION_LOG_ENV = "KUBEVINO_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def write_termination_message(message: str) -> None:
    """Kubernetes shows this file's text in the pod's status (terminationMessagePath)."""
    path = Path(os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG))
    with contextlib.suppress(OSError):
        path.write_text(message + "\n", encoding="utf-8")
